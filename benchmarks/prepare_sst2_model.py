"""The SST-2 classifier that bench_inference.py measures, fine-tuned by our own recipe (skipped if it exists).

    python benchmarks/prepare_sst2_model.py                      # -> outputs/bench/sst2-tiny/model (about 30 min on 2 cores)
    python benchmarks/prepare_sst2_model.py --preset base --output-dir outputs/bench/sst2-base

1. A Unigram tokenizer (asked for 30,000 pieces, as ALBERT's; the text yields fewer) trained on the SST-2 training
   sentences and WikiText-2 valid+test: outputs/bench/tokenizer-30k.
2. recipes/finetune_lora.py, full fine-tuning from random init (no pretrained checkpoint ships with the project),
   2 epochs on the first --train-samples SST-2 training sentences, max_length 64, batch 32.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tokenizer-dir", type=Path, default=harness.ROOT / "outputs" / "bench" / "tokenizer-30k")
    parser.add_argument("--output-dir", type=Path, default=None, help="default: outputs/bench/sst2-<preset>")
    args = parser.parse_args(argv)
    output_dir = args.output_dir or harness.ROOT / "outputs" / "bench" / f"sst2-{args.preset}"
    if (output_dir / "model" / "config.json").is_file():
        print(f"{output_dir / 'model'} exists; delete it to fine-tune again")
        return output_dir / "model"
    sst2 = harness.SHARED_DATA / "sst2"
    if not args.tokenizer_dir.is_dir():
        from albert_recipes.corpus import iter_documents
        from albert_recipes.tokenization import train_unigram_tokenizer

        lines = (sst2 / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
        wikitext = [harness.SHARED_DATA / "wikitext-2" / f"{split}.txt" for split in ("valid", "test")]
        texts = [line.split("\t")[0] for line in lines]
        texts += [s for document in iter_documents(wikitext, layout="wikitext") for s in document]
        train_unigram_tokenizer(texts, vocab_size=30000, show_progress=False, output_dir=args.tokenizer_dir)
    cmd = [sys.executable, str(harness.ROOT / "recipes" / "finetune_lora.py"),
           "--config", str(harness.ROOT / "recipes" / "configs" / "finetune_lora" / "sst2.yaml"),
           "model.name_or_path=", f"model.preset={args.preset}", f"model.tokenizer_path={args.tokenizer_dir}",
           "finetune.mode=full", "finetune.save_merged=false", f"data.train_file={sst2 / 'train.tsv'}",
           f"data.validation_file={sst2 / 'dev.tsv'}", f"data.max_train_samples={args.train_samples}",
           f"train.epochs={args.epochs}", f"train.lr={args.learning_rate}", "train.torch_threads=1", f"output_dir={output_dir}"]  # fmt: skip
    subprocess.run(cmd, check=True)
    return output_dir / "model"


if __name__ == "__main__":
    main()

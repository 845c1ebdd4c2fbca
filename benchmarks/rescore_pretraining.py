"""Re-score a pretraining export on its run's held-out set, with every figure the recipe reports today.

    python benchmarks/rescore_pretraining.py --config recipes/configs/pretrain/cpu_hour.yaml \
        --model outputs/pretrain/cpu_hour/final [key=value overrides, as the run had them]

For exports written before a metric existed (the [MASK]-position accuracy and loss, the context-free baseline): the
held-out examples, their fixed masks and the unigram model are rebuilt exactly as `recipes/pretrain.py` builds them
(`held_out_scoring`), from the same config and the data cache, so the figures the run logged come back unchanged
beside the new ones. Prints JSON; `--output` also writes it (atomically).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _pretrain_recipe():
    spec = importlib.util.spec_from_file_location("pretrain", ROOT / "recipes" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["pretrain"] = module  # dataclasses look their module up while the recipe is being executed
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the run's recipes/configs/pretrain/<variant>.yaml")
    parser.add_argument("--model", required=True, help="the run's export (<output_dir>/final)")
    parser.add_argument("--output", help="also write the JSON here")
    parser.add_argument("overrides", nargs="*", help="the run's key=value overrides")
    args = parser.parse_args(argv)
    if not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model} is not a saved model folder (no config.json)")

    from accelerate import Accelerator

    from albert_recipes import AlbertRecipesForPreTraining
    from albert_recipes import pretraining_metrics as pm
    from albert_recipes.cli import build_config
    from albert_recipes.io_utils import atomic_write_text

    recipe = _pretrain_recipe()
    cfg = build_config(recipe.PretrainConfig, args.config, args.overrides)
    accelerator = Accelerator(cpu=True)
    model = AlbertRecipesForPreTraining.from_pretrained(args.model)
    model.config.sparse_mlm_prediction = True  # the head the run evaluated with: same figures, less work
    data = recipe.prepare_data(cfg, accelerator, model.config.max_position_embeddings)
    from transformers import AutoTokenizer

    if AutoTokenizer.from_pretrained(args.model).get_vocab() != data.tokenizer.get_vocab():
        raise SystemExit(f"error: the tokenizer these settings build differs from the one saved in {args.model}: "
                         "pass the run's config and overrides")
    eval_set, _, eval_collator, unigram = recipe.held_out_scoring(cfg, data)
    loader = torch.utils.data.DataLoader(eval_set, batch_size=cfg.train.eval_batch_size, collate_fn=eval_collator)
    unigram_token = int(unigram.argmax())
    metrics, sums = pm.evaluate(model, accelerator.prepare(loader), accelerator, unigram_token,
                                data.tokenizer.mask_token_id, unigram)
    result = {**metrics, "baselines": {"mlm_unigram_token": data.tokenizer.convert_ids_to_tokens(unigram_token),
                                       **pm.context_free_baselines(sums)},
              "model": str(args.model), "config": str(args.config), "overrides": args.overrides}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        atomic_write_text(Path(args.output), text)
    return result


if __name__ == "__main__":
    main()

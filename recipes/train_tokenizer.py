"""Train an ALBERT SentencePiece-style Unigram tokenizer from text files, a Hub dataset, or the embedded corpus.

    python recipes/train_tokenizer.py --config recipes/configs/train_tokenizer/debug.yaml
    python recipes/train_tokenizer.py --config recipes/configs/train_tokenizer/default.yaml data.files=[a.txt,b.jsonl]
    python recipes/train_tokenizer.py --config recipes/configs/train_tokenizer/debug.yaml \
        data.files=[../shared/data/sst2/train.tsv] data.text_field=sentence

Trained by sentencepiece with a fixed thread count: the same data, settings and seed give byte-identical files.

The output folder loads with `AutoTokenizer.from_pretrained(folder)` and holds the merged config it was built with.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from albert_recipes.cli import ConfigError, config_to_yaml, run_cli
from albert_recipes.corpus import iter_documents, load_embedded_corpus
from albert_recipes.tokenization import save_tokenizer, train_unigram_tokenizer

logger = logging.getLogger("train_tokenizer")


@dataclass
class DataConfig:
    files: list[str] = field(
        default_factory=list,
        metadata={"help": "text (.txt: paragraph per line, blank line between documents, or WikiText), .jsonl, "
                  ".csv/.tsv (header row) or .parquet files; leave empty (and dataset empty) to use the embedded "
                  "Python-docs corpus"},
    )
    dataset: str = field(default="", metadata={"help": "a Hub dataset name for datasets.load_dataset, e.g. wikitext"})
    dataset_config: str = field(default="", metadata={"help": "the dataset's configuration, e.g. wikitext-103-raw-v1"})
    split: str = field(default="train", metadata={"help": "dataset split"})
    streaming: bool = field(default=False, metadata={"help": "stream the dataset instead of downloading it whole"})
    text_field: str = field(
        default="text", metadata={"help": "the text column of JSONL/CSV/TSV/Parquet/dataset records (only this "
                                  "column is read: e.g. sentence for GLUE's SST-2 TSV)"},
    )
    layout: Literal["auto", "blank_lines", "wikitext", "document_per_row"] = field(
        default="auto", metadata={"help": "how lines/rows form documents (see albert_recipes.corpus.iter_documents)"}
    )
    max_texts: int = field(default=0, metadata={"help": "stop after this many sentences (0: use everything)"})


@dataclass
class TokenizerConfig:
    vocab_size: int = field(default=30_000, metadata={"help": "target number of pieces (ALBERT uses 30000)"})
    lowercase: bool = field(default=True, metadata={"help": "lowercase the text, like albert-*-v2"})
    strip_accents: bool = field(default=True, metadata={"help": "NFKD + drop accents, like albert-*-v2"})
    model_max_length: int = field(default=512, metadata={"help": "the longest input the model accepts"})
    max_piece_length: int = field(default=16, metadata={"help": "longest piece in characters"})
    max_sentences: int = field(
        default=2_000_000, metadata={"help": "sentences the trainer keeps (a seeded uniform sample of a larger "
                                     "corpus): bounds memory"},
    )
    seed: int = field(default=0, metadata={"help": "seeds that sample; same data, settings and seed give the same "
                                           "files"})


@dataclass
class TrainTokenizerConfig:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    output_dir: str = field(default="outputs/tokenizer", metadata={"help": "folder to write (replaced atomically)"})

    def validate(self) -> None:
        if self.tokenizer.vocab_size < 100:
            raise ConfigError(f"tokenizer.vocab_size={self.tokenizer.vocab_size} is too small; use at least 100")
        if self.data.files and self.data.dataset:
            raise ConfigError("set data.files or data.dataset, not both")
        if self.data.max_texts < 0:
            raise ConfigError(f"data.max_texts={self.data.max_texts} must be >= 0")
        if self.tokenizer.max_sentences < 1:
            raise ConfigError(f"tokenizer.max_sentences={self.tokenizer.max_sentences} must be >= 1")
        for path in self.data.files:
            if not Path(path).is_file():
                what = "is a directory, not a file" if Path(path).is_dir() else "not found"
                raise ConfigError(f"data.files: {path} {what}")


def main(cfg: TrainTokenizerConfig):
    # parse -> setup
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(config_to_yaml(cfg))
    if cfg.data.dataset:
        import datasets

        source = datasets.load_dataset(
            cfg.data.dataset, cfg.data.dataset_config or None, split=cfg.data.split, streaming=cfg.data.streaming
        )
        documents = iter_documents(source, text_field=cfg.data.text_field, layout=cfg.data.layout)
    elif cfg.data.files:
        documents = iter_documents(cfg.data.files, text_field=cfg.data.text_field, layout=cfg.data.layout)
    else:
        logger.info("no data.files or data.dataset given: using the embedded corpus (Python reference docs)")
        documents = iter(load_embedded_corpus())
    sentences = (sentence for document in documents for sentence in document)
    if cfg.data.max_texts:
        sentences = (s for s, _ in zip(sentences, range(cfg.data.max_texts)))

    # train
    tokenizer = train_unigram_tokenizer(
        sentences,
        vocab_size=cfg.tokenizer.vocab_size,
        lowercase=cfg.tokenizer.lowercase,
        strip_accents=cfg.tokenizer.strip_accents,
        model_max_length=cfg.tokenizer.model_max_length,
        max_piece_length=cfg.tokenizer.max_piece_length,
        max_sentences=cfg.tokenizer.max_sentences,
        seed=cfg.tokenizer.seed,
        total=cfg.data.max_texts or None,
    )

    # save
    path = save_tokenizer(tokenizer, cfg.output_dir, extra_files={"train_tokenizer_config.yaml": config_to_yaml(cfg)})
    sample = "The quick brown fox jumps over the lazy dog."
    logger.info("saved %d-piece tokenizer to %s; %r -> %s", len(tokenizer), path, sample, tokenizer.tokenize(sample))
    return path


if __name__ == "__main__":
    run_cli(main, TrainTokenizerConfig, __doc__)

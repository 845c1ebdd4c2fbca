"""Sequence-to-sequence data: (source, target) text pairs, and their tokenization for `EncoderDecoderModel`.

Sources of pairs:
- files (CSV/TSV/JSON/JSONL) and `datasets` names, read by `albert_recipes.finetune_data`'s readers;
- `wikitext_heading_pairs`: WikiText section headings (`= = Heading = =`) as the "summary" of the paragraph that
  follows them, a small real task built from text at hand (`build_wikitext_headings` writes train/validation/test
  JSONL split by article, so no article contributes to two splits, plus the training articles as a pretraining
  corpus);
- `synthetic_pairs`: copy / reverse of random symbol strings, for smoke tests and learning tests.

Tokenization (`tokenize_pairs`): the source keeps the tokenizer's template (`[CLS] ... [SEP]` for ALBERT); the target
is encoded without special tokens and ends with the end-of-sequence token, so `EncoderDecoderModel` turns the labels
into decoder inputs `[start] t1 .. tn` and generation stops at the end token (the bert2bert recipe of Rothe et al.
2020 uses [CLS] as the start and [SEP] as the end token, and so do we).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import datasets

from .errors import InputError
from .io_utils import atomic_directory

SYNTHETIC_TASKS = ("copy", "reverse")
_SYMBOLS = tuple("abcdefghijkl")

# WikiText's tokenized release: " = Title = " starts an article, " = = Heading = = " a section (one more "= " per
# level), and numbers/hyphenated words are split as " @-@ ", " @,@ ", " @.@ ".
_HEADING = re.compile(r"^ ?((?:= )+)(.*?)((?: =)+) ?$")
_WIKITEXT_JOINERS = re.compile(r" @([-,.])@ ")


def detokenize_wikitext(text: str) -> str:
    """Undo WikiText's ` @-@ ` / ` @,@ ` / ` @.@ ` splitting and squeeze whitespace (nothing else is changed)."""
    return " ".join(_WIKITEXT_JOINERS.sub(r"\1", text).split())


def _heading_level(line: str) -> tuple[int, str] | None:
    match = _HEADING.match(line.rstrip("\n"))
    if not match or match.group(1).count("=") != match.group(3).count("="):
        return None
    return match.group(1).count("="), match.group(2).strip()


def read_wikitext_articles(paths: Iterable[str | Path]) -> list[tuple[str, list[str]]]:
    """(title, lines) per article, lines verbatim (headings included), in file order."""
    articles: list[tuple[str, list[str]]] = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"WikiText file not found: {path}")
        for line in path.read_text(encoding="utf-8").splitlines():
            heading = _heading_level(line)
            if heading is not None and heading[0] == 1:
                articles.append((heading[1], [line]))
            elif articles:
                articles[-1][1].append(line)
    if not articles:
        raise InputError(f"no WikiText articles (` = Title = ` lines) in {[str(p) for p in paths]}")
    return articles


def _article_key(title: str, lines: list[str]) -> str:
    """Title plus the start of the article's first paragraph: several WikiText titles are just `<unk>`."""
    first = next((line for line in lines[1:] if line.strip() and _heading_level(line) is None), "")
    return f"{detokenize_wikitext(title)} | {detokenize_wikitext(first)[:80]}"


def wikitext_heading_pairs(
    articles: list[tuple[str, list[str]]], levels: Iterable[int] = (2, 3), min_source_words: int = 8
) -> list[dict]:
    """One pair per section heading of the given levels whose first paragraph has >= `min_source_words` words:
    {"source": paragraph, "target": heading, "article": title, "article_key": ..., "level": 2 or 3}.
    Skipped: a heading directly followed by a deeper heading (an empty section), and headings with an `<unk>` in
    them (WikiText replaced a rare word there; no model can produce it, yet ROUGE would credit the literal "unk")."""
    levels = set(levels)
    pairs = []
    for title, lines in articles:
        key = _article_key(title, lines)
        for i, line in enumerate(lines):
            heading = _heading_level(line)
            if heading is None or heading[0] not in levels or "<unk>" in heading[1]:
                continue
            paragraph = next((nxt for nxt in lines[i + 1 :] if nxt.strip()), "")
            if _heading_level(paragraph) is not None or len(paragraph.split()) < min_source_words:
                continue
            pairs.append({"source": detokenize_wikitext(paragraph), "target": detokenize_wikitext(heading[1]),
                          "article": detokenize_wikitext(title), "article_key": key, "level": heading[0]})
    return pairs


def article_split(key: str, validation_fraction: float, test_fraction: float, seed: int) -> str:
    """"train", "validation" or "test" from a hash of (seed, article key): stable across runs, machines and Python
    versions (the builtin `hash` is salted per process), and every section of an article lands in the same split."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    return "validation" if u < test_fraction + validation_fraction else "train"


def build_wikitext_headings(
    paths: Iterable[str | Path],
    output_dir: str | Path,
    levels: Iterable[int] = (2, 3),
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    min_source_words: int = 8,
) -> dict:
    """Write `train.jsonl`, `validation.jsonl`, `test.jsonl` (source/target/article/level), `pretrain_corpus.txt`
    (the training split's articles verbatim, WikiText layout, for a pretraining run that never sees held-out
    paragraphs) and `stats.json`, all in one atomic rename. Returns the stats."""
    for name, value in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 0.5:
            raise InputError(f"{name}={value} must be in (0, 0.5)")
    paths = [Path(p) for p in paths]
    articles = read_wikitext_articles(paths)
    keys = [_article_key(title, lines) for title, lines in articles]
    split_of = {key: article_split(key, validation_fraction, test_fraction, seed) for key in keys}
    pairs = wikitext_heading_pairs(articles, levels, min_source_words)
    by_split = {name: [p for p in pairs if split_of[p["article_key"]] == name]
                for name in ("train", "validation", "test")}
    headings = Counter(p["target"].lower() for p in by_split["train"])
    stats = {
        "sources": [str(p) for p in paths], "levels": sorted(set(levels)), "seed": seed,
        "articles": dict(Counter(split_of[key] for key in keys)), "pairs": {k: len(v) for k, v in by_split.items()},
        "mean_target_words": round(sum(len(p["target"].split()) for p in pairs) / max(len(pairs), 1), 2),
        "mean_source_words": round(sum(len(p["source"].split()) for p in pairs) / max(len(pairs), 1), 1),
        "most_common_train_headings": headings.most_common(10),
    }
    for name, rows in by_split.items():
        if not rows:
            raise InputError(f"the {name} split has no heading pairs; use more WikiText or a larger {name}_fraction")
    with atomic_directory(output_dir) as tmp:
        for name, rows in by_split.items():
            (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        corpus = [line for key, (_, lines) in zip(keys, articles) if split_of[key] == "train" for line in lines]
        (tmp / "pretrain_corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def first_words_baseline(sources: list[str], num_words: int) -> list[str]:
    """The trivial summary: the first `num_words` words of each source."""
    return [" ".join(s.split()[:num_words]) for s in sources]


def synthetic_pairs(task: str, count: int, seed: int = 0, min_length: int = 2, max_length: int = 6) -> list[dict]:
    """`copy`: the target repeats the source; `reverse`: the target is the source backwards. Sources are random
    strings of 2-6 one-letter words over 12 letters: one or two tokens each with any tokenizer (a Unigram
    tokenizer trained on such text keeps longer words in pieces, which only makes the sequences longer)."""
    if task not in SYNTHETIC_TASKS:
        raise InputError(f"unknown synthetic task {task!r}; choose one of {list(SYNTHETIC_TASKS)}")
    if not 1 <= min_length <= max_length:
        raise InputError(f"need 1 <= min_length ({min_length}) <= max_length ({max_length})")
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        words = [rng.choice(_SYMBOLS) for _ in range(rng.randint(min_length, max_length))]
        pairs.append({"source": " ".join(words), "target": " ".join(words if task == "copy" else words[::-1])})
    return pairs


def special_token_ids(tokenizer) -> tuple[int, int, int]:
    """(decoder start, end of sequence, pad) ids: [CLS]/[SEP] for BERT-style tokenizers, else BOS/EOS."""
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    for name, value in (("decoder start ([CLS] or BOS)", start), ("end ([SEP] or EOS)", end),
                        ("padding", tokenizer.pad_token_id)):
        if value is None:
            raise InputError(f"the tokenizer has no {name} token; a seq2seq model needs one")
    return start, end, tokenizer.pad_token_id


def tokenize_pairs(
    dataset: datasets.Dataset, tokenizer, max_source_length: int, max_target_length: int
) -> datasets.Dataset:
    """`source`/`target` columns -> `input_ids`, `attention_mask`, `labels` (target ids + end token, truncated to
    `max_target_length` tokens with the end token kept). Pad with `transformers.DataCollatorForSeq2Seq`."""
    if max_target_length < 2:
        raise InputError(f"max_target_length={max_target_length} must be at least 2 (one token and the end token)")
    _, end, _ = special_token_ids(tokenizer)

    def encode(batch):
        encoded = tokenizer(batch["source"], truncation=True, max_length=max_source_length)
        targets = tokenizer(batch["target"], add_special_tokens=False)["input_ids"]
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
                "labels": [ids[: max_target_length - 1] + [end] for ids in targets]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="tokenizing")


def main(argv: list[str] | None = None) -> None:
    """`python -m albert_recipes.seq2seq_data WIKITEXT_FILE... --output DIR`: the WikiText headings task."""
    import argparse

    parser = argparse.ArgumentParser(description="Build the WikiText headings seq2seq task (" + __doc__.split("\n")[0]
                                     + ") as train/validation/test JSONL split by article.")
    parser.add_argument("files", nargs="+", help="WikiText files (tokenized release, e.g. wiki.valid.tokens)")
    parser.add_argument("--output", required=True, help="folder for train/validation/test.jsonl, pretrain_corpus.txt")
    parser.add_argument("--levels", type=int, nargs="+", default=[2, 3], help="heading levels (2: = = H = =)")
    parser.add_argument("--validation-fraction", type=float, default=0.15, help="share of articles")
    parser.add_argument("--test-fraction", type=float, default=0.15, help="share of articles")
    parser.add_argument("--seed", type=int, default=0, help="seeds the article split")
    args = parser.parse_args(argv)
    try:
        stats = build_wikitext_headings(args.files, args.output, args.levels, args.validation_fraction,
                                        args.test_fraction, args.seed)
    except InputError as err:
        parser.exit(2, f"error: {err}\n")
    print(json.dumps(stats, indent=2))


if __name__ == "__main__":
    main()


__all__ = [
    "SYNTHETIC_TASKS", "article_split", "build_wikitext_headings", "detokenize_wikitext", "first_words_baseline",
    "read_wikitext_articles", "special_token_ids", "synthetic_pairs", "tokenize_pairs", "wikitext_heading_pairs",
]

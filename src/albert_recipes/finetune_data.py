"""Fine-tuning data: read task splits from CSV/TSV/JSON(L) files or `datasets` names, check labels, tokenize.

Every reader returns a `datasets.Dataset` whose columns are renamed to one canonical set per task, so the rest
of the recipe never looks at user column names:
- sequence classification: `text`, optional `text_pair`, `label` (int class id, or float for regression)
- token classification: `tokens` (list of words), `tags` (list of int tag ids, word-level)
- extractive QA: `id`, `question`, `context`, `answers` (SQuAD format, see `albert_recipes.qa`)
Problems (missing file or column, empty file, unknown label, label outside `num_labels`) raise `ValueError`
naming the file or split, the bad value and what is allowed, before any model is built.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
from .errors import InputError

TASKS = ("sequence_classification", "token_classification", "question_answering")
FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


def read_data_file(path: str | Path) -> datasets.Dataset:
    """CSV (quoted, comma), TSV (read verbatim with no quoting, as GLUE ships it), JSON Lines, or JSON holding a
    list of records (or {"data": [...]}). CSV/TSV columns become int or float when every value parses."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise InputError(f"{path}: unsupported file type {suffix!r}; use one of {list(FILE_SUFFIXES)}")
    if not path.read_text(encoding="utf-8").strip():
        raise InputError(f"{path} is empty; it needs a header row (CSV/TSV) or records (JSON) and at least one example")
    if suffix in (".csv", ".tsv"):
        dataset = datasets.Dataset.from_dict(_delimited_columns(path, tsv=suffix == ".tsv"))
    else:
        dataset = datasets.Dataset.from_list(_json_records(path))
    if len(dataset) == 0:
        raise InputError(f"{path} has no examples (only a header, or an empty list)")
    return dataset


def _delimited_columns(path: Path, tsv: bool) -> dict[str, list]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
        header = next(reader)
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise InputError(f"{path}, line {reader.line_num}: {len(row)} fields but the header {header} has "
                                 f"{len(header)}; a {'TSV' if tsv else 'CSV'} file needs the same number on every line")
            rows.append(row)
    return {name: _typed([row[i] for row in rows]) for i, name in enumerate(header)}


def _typed(values: list[str]) -> list:
    for kind in (int, float):
        try:
            return [kind(v) for v in values]
        except ValueError:
            continue
    return values


def _json_records(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records = json.loads(text)
            records = records["data"] if isinstance(records, dict) and "data" in records else records
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputError(f"{path}: expected a list of JSON objects (one example each)")
    return records


def load_split(
    file: str | Path | None, dataset_name: str | None, dataset_config: str | None, split: str
) -> datasets.Dataset:
    """One split from a local file, or else from `datasets.load_dataset(dataset_name, dataset_config)`."""
    if file:
        return read_data_file(file)
    if not dataset_name:
        raise InputError(f"no data for the {split!r} split: set a data file or data.dataset_name")
    dataset = datasets.load_dataset(dataset_name, dataset_config, split=split)
    if len(dataset) == 0:
        raise InputError(f"{dataset_name} split {split!r} has no examples")
    return dataset


def require_columns(dataset: datasets.Dataset, columns: dict[str, str | None], where: str) -> datasets.Dataset:
    """Rename user columns to canonical names ({canonical: user}; None = optional and absent); drop the rest."""
    wanted = {canonical: user for canonical, user in columns.items() if user}
    for canonical, user in wanted.items():
        if user not in dataset.column_names:
            raise InputError(
                f"{where}: no column {user!r} (needed as the {canonical} column); the columns are "
                f"{dataset.column_names}; point data.{canonical}_column at the right one"
            )
    dataset = dataset.select_columns(list(wanted.values()))
    renames = {user: canonical for canonical, user in wanted.items() if user != canonical}
    return dataset.rename_columns(renames) if renames else dataset


def infer_label_names(values: list, given: list[str]) -> list[str]:
    """The given names, or else the sorted distinct string labels of the training split."""
    return list(given) if given else sorted({v for v in values if isinstance(v, str)})


def _label_id(value, label_names: list[str], num_labels: int, where: str, row: int) -> int:
    if isinstance(value, str) and value in label_names:
        return label_names.index(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < num_labels:
        return value
    allowed = f"the names {label_names} or " if label_names else ""
    raise InputError(f"{where}, row {row}: label {value!r} is outside num_labels={num_labels}; "
                     f"allowed are {allowed}integers 0..{num_labels - 1}")


def encode_class_labels(
    dataset: datasets.Dataset, label_names: list[str], num_labels: int, where: str, column: str = "label"
) -> datasets.Dataset:
    """Map every label (name or integer) to an id in [0, num_labels), failing on the first one that is not."""
    ids = [_label_id(v, label_names, num_labels, where, i) for i, v in enumerate(dataset[column])]
    return dataset.remove_columns(column).add_column(column, ids)


def encode_regression_labels(dataset: datasets.Dataset, where: str) -> datasets.Dataset:
    values = []
    for row, value in enumerate(dataset["label"]):
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            raise InputError(f"{where}, row {row}: regression label {value!r} is not a number") from None
    return dataset.remove_columns("label").add_column("label", values)


def encode_tag_sequences(dataset: datasets.Dataset, label_names: list[str], where: str) -> datasets.Dataset:
    """Word-level tags (names or ids) -> ids; every example needs one tag per word."""
    tag_ids = []
    for row, (tokens, tags) in enumerate(zip(dataset["tokens"], dataset["tags"])):
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise InputError(f"{where}, row {row}: tokens and tags must be lists of the same length, got "
                             f"{tokens!r:.80} and {tags!r:.80}")
        tag_ids.append([_label_id(tag, label_names, len(label_names), where, row) for tag in tags])
    return dataset.remove_columns("tags").add_column("tags", tag_ids)


def tokenize_classification(dataset: datasets.Dataset, tokenizer, max_length: int) -> datasets.Dataset:
    def encode(batch):
        pairs = batch["text_pair"] if "text_pair" in batch else None
        encoded = tokenizer(batch["text"], pairs, truncation=True, max_length=max_length)
        encoded["labels"] = batch["label"]
        return encoded

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="tokenizing")


def align_word_labels(word_ids: list[int | None], word_tags: list[int]) -> list[int]:
    """Label the first sub-token of each word; -100 (ignored by the loss) on later sub-tokens and specials."""
    labels, previous = [], None
    for word in word_ids:
        labels.append(-100 if word is None or word == previous else word_tags[word])
        previous = word
    return labels


def tokenize_token_classification(dataset: datasets.Dataset, tokenizer, max_length: int) -> datasets.Dataset:
    if not getattr(tokenizer, "is_fast", False):
        raise InputError("token classification needs a fast tokenizer (for word_ids); "
                         f"got {type(tokenizer).__name__}")

    def encode(batch):
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        encoded["labels"] = [align_word_labels(encoded.word_ids(i), tags) for i, tags in enumerate(batch["tags"])]
        return encoded

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="tokenizing")


_NAMES = ["anna", "boris", "chen", "dara", "emil", "fatima", "george", "hana", "ivan", "julia"]
_SURNAMES = ["smith", "garcia", "novak", "tanaka", "okafor"]
_CITIES = ["paris", "london", "lagos", "tokyo", "lima", "oslo", "cairo", "delhi"]
_GOOD = ["great", "wonderful", "funny", "moving", "brilliant", "charming"]
_BAD = ["boring", "awful", "dull", "clumsy", "tedious", "bland"]
_FILLER = ["the", "film", "was", "really", "and", "quite", "story", "acting"]


def synthetic_examples(task: str, count: int, seed: int = 0) -> list[dict]:
    """Tiny learnable examples in the canonical columns, for debug runs and tests (no download, no files).

    sequence classification: sentiment from cue words (label 1 = positive); token classification: IOB2
    person/location tags; QA: "where does X live?" over several "X lives in Y." sentences, with every fourth
    question asking about someone absent (unanswerable, SQuAD v2 style).
    """
    import random

    rng = random.Random(seed)
    examples = []
    for i in range(count):
        if task == "sequence_classification":
            label = rng.randrange(2)
            words = rng.sample(_FILLER, 4) + [rng.choice(_GOOD if label else _BAD)]
            rng.shuffle(words)
            examples.append({"text": " ".join(words), "label": label})
        elif task == "token_classification":
            first, last, city = rng.choice(_NAMES), rng.choice(_SURNAMES), rng.choice(_CITIES)
            words = [first, last, "moved", "to", city, "last", "year"]
            tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O"]
            if rng.random() < 0.5:
                words, tags = [city, "welcomed", first] + words[5:], ["B-LOC", "O", "B-PER", "O", "O"]
            examples.append({"tokens": words, "tags": tags})
        elif task == "question_answering":
            people = rng.sample(_NAMES, 3)
            cities = rng.sample(_CITIES, 3)
            context = " ".join(f"{p} lives in {c}." for p, c in zip(people, cities))
            if i % 4 == 3:
                absent = rng.choice([n for n in _NAMES if n not in people])
                examples.append({"id": f"q{i}", "question": f"where does {absent} live?", "context": context,
                                 "answers": {"text": [], "answer_start": []}})
                continue
            k = rng.randrange(3)
            start = context.index(f"{people[k]} lives in {cities[k]}.") + len(f"{people[k]} lives in ")
            examples.append({"id": f"q{i}", "question": f"where does {people[k]} live?", "context": context,
                             "answers": {"text": [cities[k]], "answer_start": [start]}})
        else:
            raise InputError(f"unknown task {task!r}; choose one of {list(TASKS)}")
    return examples

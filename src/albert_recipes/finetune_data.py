"""Fine-tuning data: read task splits from CSV/TSV/JSON(L) files or `datasets` names, check labels, tokenize.

Every reader returns a `datasets.Dataset` whose columns are renamed to one canonical set per task, so the rest
of the recipe never looks at user column names:
- sequence classification: `text`, optional `text_pair`, `label` (int class id, or float for regression)
- token classification: `tokens` (list of words), `tags` (list of int tag ids, word-level)
- extractive QA: `id`, `question`, `context`, `answers` (SQuAD format, see `albert_recipes.qa`)
Problems (missing file or column, a folder or a non-UTF-8 file, empty file, unknown label, label outside
`num_labels`) raise `InputError` naming the file and line (or split and example), the bad value and what is
allowed, before any model is built.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import datasets
from .errors import InputError

TASKS = ("sequence_classification", "token_classification", "question_answering")
FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl")


def read_data_file(path: str | Path, suffixes: tuple[str, ...] = FILE_SUFFIXES) -> datasets.Dataset:
    """CSV (quoted, comma), TSV (read verbatim with no quoting, as GLUE ships it), JSON Lines, JSON holding a
    list of records (or {"data": [...]}), or, when `suffixes` allows it, TXT (one `text` per non-blank line).
    CSV/TSV columns become int or float when every value parses. Text must be UTF-8 (a BOM is dropped)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a data file; point at one {'/'.join(suffixes)} file")
    if not path.is_file():
        raise InputError(f"data file not found: {path}")
    if suffix not in suffixes:
        raise InputError(f"{path}: unsupported file type {suffix!r}; use one of {list(suffixes)}")
    text = read_utf8(path)
    if not text.strip():
        needs = {".csv": "a header row and", ".tsv": "a header row and", ".txt": "one text per line:",
                 ".json": "a list of records:", ".jsonl": "one JSON record per line:"}[suffix]
        raise InputError(f"{path} is empty; it needs {needs} at least one example")
    if suffix in (".csv", ".tsv"):
        dataset = datasets.Dataset.from_dict(_delimited_columns(path, text, tsv=suffix == ".tsv"))
    elif suffix == ".txt":
        dataset = datasets.Dataset.from_dict({"text": [line for line in text.splitlines() if line.strip()]})
    else:
        dataset = datasets.Dataset.from_list(_json_records(path, text))
    if len(dataset) == 0:
        raise InputError(f"{path} has no examples (only a header, or an empty list)")
    return dataset


def read_utf8(path: Path) -> str:
    """The file's text; a byte sequence that is not UTF-8 is reported with its line and column."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # -sig: a byte-order mark (Excel, Notepad) is not part of the first header
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise InputError(
            f"{path}, line {line}: byte 0x{raw[err.start]:02x} at column {column} is not valid UTF-8; save the file "
            "as UTF-8 (for example `iconv -f latin1 -t utf-8 in.tsv > out.tsv`)"
        ) from None


def _csv_rows(text: str, tsv: bool):
    """(first file line, fields) of every non-empty row, header included."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if tsv else ",",
                        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    start = 1
    for row in reader:
        if row:
            yield start, row
        start = reader.line_num + 1  # a quoted CSV field may span several lines


def _delimited_columns(path: Path, text: str, tsv: bool) -> dict[str, list]:
    rows = _csv_rows(text, tsv)
    _, header = next(rows)
    data = []
    for line, row in rows:
        if len(row) != len(header):
            raise InputError(f"{path}, line {line}: {len(row)} fields but the header {header} has "
                             f"{len(header)}; a {'TSV' if tsv else 'CSV'} file needs the same number on every line")
        data.append(row)
    return {name: _typed([row[i] for row in data]) for i, name in enumerate(header)}


def _typed(values: list[str]) -> list:
    for kind in (int, float):
        try:
            return [kind(v) for v in values]
        except ValueError:
            continue
    return values


def _json_records(path: Path, text: str) -> list[dict]:
    if path.suffix.lower() == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InputError(f"{path}, line {number}: not valid JSON ({err.msg} at column {err.colno})") from None
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}, line {err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
        records = records["data"] if isinstance(records, dict) and "data" in records else records
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InputError(f"{path}: expected a list of JSON objects (one example each)")
    return records


def row_location(where: str, index: int) -> str:
    """Where example `index` (0-based, in file order) came from, for messages: 'dev.tsv, line 11' for files with
    one example per line, 'train.json, record 3', or 'glue[validation], example 9 (counting from 0)'."""
    path = Path(where)
    if not path.is_file():
        return f"{where}, example {index} (counting from 0)"
    suffix = path.suffix.lower()
    lines: list[int] = []
    if suffix in (".csv", ".tsv"):
        lines = [line for line, _ in _csv_rows(read_utf8(path), tsv=suffix == ".tsv")][1:]
    elif suffix in (".jsonl", ".txt"):
        lines = [number for number, line in enumerate(read_utf8(path).splitlines(), start=1) if line.strip()]
    return f"{where}, line {lines[index]}" if index < len(lines) else f"{where}, record {index + 1}"


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
    raise InputError(f"{row_location(where, row)}: label {value!r} is outside num_labels={num_labels}; "
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
            raise InputError(f"{row_location(where, row)}: regression label {value!r} is not a number") from None
    return dataset.remove_columns("label").add_column("label", values)


def encode_tag_sequences(dataset: datasets.Dataset, label_names: list[str], where: str) -> datasets.Dataset:
    """Word-level tags (names or ids) -> ids; every example needs one tag per word."""
    tag_ids = []
    for row, (tokens, tags) in enumerate(zip(dataset["tokens"], dataset["tags"])):
        if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
            raise InputError(f"{row_location(where, row)}: tokens and tags must be lists of the same length, got "
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

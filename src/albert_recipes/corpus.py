"""Corpora -> documents, where a document is a list of sentences (what the ALBERT example builder consumes).

Sources: plain text files (one paragraph or sentence per line, blank lines between documents, or the WikiText
layout where ` = Title = ` lines start articles), JSONL, CSV/TSV (header row) and Parquet files with a text
column, and any `datasets.Dataset` / `IterableDataset`. `load_embedded_corpus()` gives real English prose with no download.

Bad input is never turned into a silently empty corpus: empty documents and overlong "sentences" (text with no
sentence boundary longer than `max_sentence_chars`, e.g. a minified file on one line) are skipped and counted in the
log, and a corpus that ends up with no documents raises `ValueError`. Undecodable bytes raise `ValueError` naming
the file, line and offset unless `errors="replace"` is asked for.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import gc
import json
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal
from .errors import InputError

logger = logging.getLogger(__name__)

Document = list[str]
Layout = Literal["auto", "blank_lines", "wikitext"]

# A sentence ends at . ! ? (plus closing quotes/brackets) followed by whitespace and an upper-case letter, digit or
# opening quote. Lower-case continuations ("H. gammarus", "e.g. this") are not split, which suits encyclopedic text.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_WIKITEXT_TITLE = re.compile(r"^ ?= [^=].* = ?$")
_WIKITEXT_HEADING = re.compile(r"^ ?(= ){2,}.*( =){2,} ?$")
_WHITESPACE = re.compile(r"\s+")


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph into sentences with a small regex (no model download); whitespace is normalised."""
    text = _WHITESPACE.sub(" ", paragraph).strip()
    if not text:
        return []
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


@dataclasses.dataclass
class _Counts:
    documents: int = 0
    sentences: int = 0
    empty_documents: int = 0
    overlong_sentences: int = 0

    def report(self, source: str, max_sentence_chars: int) -> None:
        logger.info("%s: %d documents, %d sentences", source, self.documents, self.sentences)
        if self.empty_documents:
            logger.info("%s: skipped %d empty documents", source, self.empty_documents)
        if self.overlong_sentences:
            logger.warning(
                "%s: skipped %d sentences longer than max_sentence_chars=%d (no sentence boundary found)",
                source, self.overlong_sentences, max_sentence_chars,
            )
        if self.documents == 0:
            raise InputError(
                f"{source}: no usable documents (skipped {self.empty_documents} empty documents and "
                f"{self.overlong_sentences} sentences longer than max_sentence_chars={max_sentence_chars})"
            )


class _DocumentBuilder:
    """Collects paragraphs into the current document and emits finished, non-empty documents."""

    def __init__(self, counts: _Counts, max_sentence_chars: int):
        self.counts = counts
        self.max_sentence_chars = max_sentence_chars
        self.sentences: list[str] = []
        self.saw_text = False

    def add_paragraph(self, paragraph: str) -> None:
        for sentence in split_sentences(paragraph):
            self.saw_text = True
            if len(sentence) > self.max_sentence_chars:
                self.counts.overlong_sentences += 1
            else:
                self.sentences.append(sentence)

    def finish(self) -> Iterator[Document]:
        if self.sentences:
            self.counts.documents += 1
            self.counts.sentences += len(self.sentences)
            yield self.sentences
        elif self.saw_text:
            self.counts.empty_documents += 1
        self.sentences, self.saw_text = [], False


def _detect_layout(first_line: str) -> Layout:
    return "wikitext" if _WIKITEXT_TITLE.match(first_line.rstrip("\n")) else "blank_lines"


def documents_from_lines(
    lines: Iterable[str], layout: Layout = "auto", max_sentence_chars: int = 20_000, source: str = "corpus"
) -> Iterator[Document]:
    """Turn lines (paragraph or sentence per line) into documents.

    `blank_lines`: blank lines separate documents. `wikitext`: a ` = Title = ` line starts a new article,
    ` = = Sub = = ` headings and blank lines are dropped. `auto` picks `wikitext` when the first non-blank line is
    a title. Raises `ValueError` at the end if nothing usable was found.
    """
    if layout not in ("auto", "blank_lines", "wikitext"):
        raise InputError(f"layout={layout!r} is not allowed; choose 'auto', 'blank_lines' or 'wikitext'")
    counts = _Counts()
    builder = _DocumentBuilder(counts, max_sentence_chars)
    for line in lines:
        if not line.strip():
            if layout == "blank_lines":
                yield from builder.finish()
            continue
        if layout == "auto":
            layout = _detect_layout(line)
        if layout == "wikitext":
            if _WIKITEXT_HEADING.match(line.rstrip("\n")):
                continue
            if _WIKITEXT_TITLE.match(line.rstrip("\n")):
                yield from builder.finish()
                continue
        builder.add_paragraph(line)
    yield from builder.finish()
    counts.report(source, max_sentence_chars)


def documents_from_texts(
    texts: Iterable[str | None], max_sentence_chars: int = 20_000, source: str = "corpus"
) -> Iterator[Document]:
    """One text per document (a JSONL record, a dataset row); its lines are paragraphs."""
    counts = _Counts()
    builder = _DocumentBuilder(counts, max_sentence_chars)
    for text in texts:
        for paragraph in (text or "").splitlines():
            builder.add_paragraph(paragraph)
        if not builder.saw_text:
            counts.empty_documents += 1
        yield from builder.finish()
    counts.report(source, max_sentence_chars)


def _read_text_lines(path: Path, errors: str) -> Iterator[str]:
    with open(path, "rb") as f:
        offset = 0
        for number, raw in enumerate(f, start=1):
            try:
                yield raw.decode("utf-8", errors=errors)
            except UnicodeDecodeError as err:
                raise InputError(
                    f"{path}:{number}: bytes at offset {offset + err.start} are not valid UTF-8; "
                    "re-encode the file or pass errors='replace'"
                ) from None
            offset += len(raw)


def _delimited_texts(path: Path, text_field: str, errors: str) -> Iterator[str | None]:
    """The `text_field` column of a CSV or TSV file with a header row, one record per row (streamed).

    TSV is read without quote handling (as GLUE distributes it: quotes are part of the text), CSV with it.
    """
    tsv = path.suffix.lower() == ".tsv"
    lines = _read_text_lines(path, errors)
    reader = csv.reader(lines, delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError(f"{path}: the file is empty; a {'TSV' if tsv else 'CSV'} file needs a header row")
        if text_field not in header:
            raise InputError(f"{path}:1: no '{text_field}' column in the header (found {header}); set text_field "
                             "to the column that holds the text")
        column = header.index(text_field)
        for row in reader:
            if not row:
                continue
            if len(row) <= column:
                raise InputError(f"{path}:{reader.line_num}: {len(row)} fields, the '{text_field}' column is field "
                                 f"{column + 1} of {len(header)}")
            yield row[column]
    except csv.Error as err:
        raise InputError(f"{path}:{reader.line_num}: not valid {'TSV' if tsv else 'CSV'} ({err})") from None


def _jsonl_texts(path: Path, text_field: str, errors: str) -> Iterator[str | None]:
    for number, line in enumerate(_read_text_lines(path, errors), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict) or text_field not in record:
            keys = sorted(record) if isinstance(record, dict) else type(record).__name__
            raise InputError(f"{path}:{number}: no '{text_field}' field (found {keys}); set text_field")
        yield record[text_field]


def _parquet_texts(path: Path, text_field: str) -> Iterator[str | None]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    if text_field not in parquet.schema_arrow.names:
        raise InputError(f"{path}: no '{text_field}' column (found {parquet.schema_arrow.names}); set text_field")
    for batch in parquet.iter_batches(columns=[text_field]):
        yield from batch.column(0).to_pylist()


def _dataset_texts(dataset: Any, text_field: str) -> Iterator[str | None]:
    names = dataset.column_names
    if names is not None and text_field not in names:
        raise InputError(f"dataset has no '{text_field}' column (found {names}); set text_field")
    for row in dataset:
        yield row[text_field]


def iter_documents(
    source: Any,
    text_field: str = "text",
    layout: Layout | Literal["document_per_row"] = "auto",
    max_sentence_chars: int = 20_000,
    errors: Literal["strict", "replace", "ignore"] = "strict",
) -> Iterator[Document]:
    """Stream documents from a path (.txt or other text, .jsonl/.json, .csv/.tsv, .parquet), a list of paths, or a
    dataset.

    Text files use `layout` (see `documents_from_lines`); JSONL/CSV/TSV/Parquet records are one document each, read
    from their `text_field` column (a CSV/TSV needs a header row naming it). A
    `datasets` dataset is one document per row by default (`layout="document_per_row"` or "auto"); pass
    `layout="wikitext"` or "blank_lines" for line-per-row datasets such as the Hub's `wikitext`.
    """
    if isinstance(source, (list, tuple)):
        for item in source:
            yield from iter_documents(item, text_field, layout, max_sentence_chars, errors)
        return
    if hasattr(source, "column_names") and hasattr(source, "features"):
        texts = _dataset_texts(source, text_field)
        if layout in ("auto", "document_per_row"):
            yield from documents_from_texts(texts, max_sentence_chars, source="dataset")
        else:
            lines = (text or "" for text in texts)
            yield from documents_from_lines(lines, layout, max_sentence_chars, source="dataset")
        return
    path = Path(source)
    if path.is_dir():
        raise InputError(f"corpus file {path} is a directory; name the files in it")
    if not path.is_file():
        raise InputError(f"corpus file not found: {path}")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        yield from documents_from_texts(_jsonl_texts(path, text_field, errors), max_sentence_chars, str(path))
    elif suffix in (".csv", ".tsv"):
        yield from documents_from_texts(_delimited_texts(path, text_field, errors), max_sentence_chars, str(path))
    elif suffix == ".parquet":
        yield from documents_from_texts(_parquet_texts(path, text_field), max_sentence_chars, str(path))
    else:
        line_layout = "auto" if layout == "document_per_row" else layout
        yield from documents_from_lines(_read_text_lines(path, errors), line_layout, max_sentence_chars, str(path))


def load_documents(source: Any, **kwargs: Any) -> list[Document]:
    """`iter_documents` collected into a list (the whole corpus in memory)."""
    return list(iter_documents(source, **kwargs))


def documents_to_dataset(documents: Iterable[Document]):
    """A `datasets.Dataset` with one row per document and a `sentences` column (what `build_sop_dataset` takes)."""
    import datasets

    documents = list(documents)
    if not documents:
        raise InputError("no documents to put in a dataset")
    return datasets.Dataset.from_dict({"sentences": documents})


# --- the embedded corpus: prose that ships with every CPython, no download ---------------------------------------

_RST_UNDERLINE = re.compile(r"^([*=\-^~\"+#])\1{2,}$")
_SAFE_DOC_MODULES = (
    "argparse", "collections", "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "fractions",
    "functools", "heapq", "inspect", "itertools", "json", "logging", "os", "pathlib", "pickle", "random", "re",
    "shutil", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "typing",
    "unittest", "zipfile",
)
EMBEDDED_SOURCES = ("reference", "docstrings")
_CODE_MARKERS = re.compile(r">>>|::=")  # an interpreter prompt or a grammar rule inside a sentence
# test suites and their data (deliberately odd code), vendored third-party packages
_SKIPPED_STDLIB_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test"})


def _prose_paragraphs(text: str) -> Iterator[str]:
    """Paragraphs of running prose: drops headings, code samples, grammar productions and signature lists."""
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines or (len(lines) >= 2 and _RST_UNDERLINE.match(lines[-1])):
            continue  # empty, or a heading and its underline
        paragraph = " ".join(lines)
        letters = sum(ch.isalpha() or ch == " " for ch in paragraph)
        is_code = lines[0].startswith((">>>", "...", "*", "+", "|", "-")) or "::=" in paragraph
        if not is_code and paragraph.endswith((".", "!", "?")) and letters >= 0.8 * len(paragraph):
            yield paragraph


def _reference_texts() -> list[str]:
    """The language and library reference topics of `help()` (`pydoc_data.topics`), one text per topic."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        return []
    return [topics[name] for name in sorted(topics)]


def _statement_docstrings(body: list) -> Iterator[str]:
    """Docstrings of the classes and functions defined in `body`, in source order; visits statements only (a full
    `ast.walk` over every expression node costs several times more)."""
    import ast

    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                yield doc
            yield from _statement_docstrings(node.body)
        else:  # definitions inside if/try/with/for/while blocks
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(node, field, None)
                if isinstance(block, list) and block and isinstance(block[0], ast.AST):
                    yield from _statement_docstrings(block)


def _module_docstrings(path: Path) -> str:
    """The docstrings of one source file (module, classes, functions) in source order, read with `ast`: nothing
    is imported or executed, so any module of the standard library is safe to read."""
    import ast

    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return ""
    docs = [ast.get_docstring(tree) or "", *_statement_docstrings(tree.body)]
    return "\n\n".join(doc for doc in docs if doc)


def _docstring_texts() -> list[str]:
    """Standard-library docstrings, one text per module, in sorted path order; from the source files when the
    installation ships them, else (bytecode-only installations) from a few imported modules."""
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(path for path in root.rglob("*.py")
                   if not _SKIPPED_STDLIB_DIRS.intersection(path.relative_to(root).parts))
    if files:
        # the parse allocates millions of AST nodes and no cycles: without the cyclic GC it takes half the time
        enabled = gc.isenabled()
        gc.disable()
        try:
            return [_module_docstrings(path) for path in files]
        finally:
            if enabled:
                gc.enable()
    import importlib
    import inspect

    texts = []
    for name in _SAFE_DOC_MODULES:
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module) or ""]
        docs += [inspect.getdoc(obj) or "" for _, obj in inspect.getmembers(module) if inspect.isclass(obj)]
        texts.append("\n\n".join(docs))
    return texts


@functools.lru_cache(maxsize=None)
def _embedded_documents(source: str, min_sentences: int) -> tuple[tuple[str, ...], ...]:
    texts = _reference_texts() if source == "reference" else _docstring_texts()
    documents = []
    for text in texts:
        sentences = [s for p in _prose_paragraphs(text) for s in split_sentences(p)
                     if len(s.split()) >= 3 and not _CODE_MARKERS.search(s)]
        if len(sentences) >= min_sentences:
            documents.append(tuple(sentences))
    return tuple(documents)


def load_embedded_corpus(min_sentences: int = 2, sources: Iterable[str] = EMBEDDED_SOURCES) -> list[Document]:
    """Real English prose with no network, from what every CPython installation ships:

    - `"reference"`: the language and library reference topics of `help()` (`pydoc_data.topics`, ~260 KB of
      prose), one document per topic;
    - `"docstrings"`: the docstrings of the standard library's source files (~1.3 MB of prose), one document per
      module, read with `ast` (nothing is imported).

    Code samples, headings and grammar are dropped, and documents with fewer than `min_sentences` sentences (the
    SOP task needs sentence pairs). The text depends on the Python version (its docs change), not on the machine.
    The corpus is read once per process; each call returns a fresh list.
    """
    sources = tuple(sources)
    unknown = sorted(set(sources) - set(EMBEDDED_SOURCES))
    if unknown or not sources:
        raise InputError(f"embedded corpus sources {unknown or list(sources)} are not allowed; choose from "
                         f"{list(EMBEDDED_SOURCES)}")
    documents = [list(doc) for source in sources for doc in _embedded_documents(source, min_sentences)]
    if not documents:
        raise InputError("the embedded corpus came out empty; pass a corpus explicitly")
    logger.info("embedded corpus: %d documents, %d sentences", len(documents), sum(map(len, documents)))
    return documents

import json
import logging
from pathlib import Path

import datasets
import pytest

from albert_recipes.corpus import (
    documents_from_lines,
    documents_to_dataset,
    load_documents,
    load_embedded_corpus,
    split_sentences,
)

WIKITEXT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "wikitext-2" / "valid.txt"
needs_wikitext = pytest.mark.skipif(not WIKITEXT.is_file(), reason=f"shared data missing: {WIKITEXT}")


def test_split_sentences_keeps_abbreviations_with_lower_case_continuation():
    text = "It is closely related to H. americanus. It may grow large!  Is it blue? \"Yes,\" he said. 3 more."
    assert split_sentences(text) == [
        "It is closely related to H. americanus.",
        "It may grow large!",
        "Is it blue?",
        '"Yes," he said.',
        "3 more.",
    ]
    assert split_sentences("   \n ") == []


def test_blank_lines_separate_documents(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("First doc. Second sentence.\nA new paragraph.\n\n\nSecond doc here.\n", encoding="utf-8")
    assert load_documents(path) == [["First doc.", "Second sentence.", "A new paragraph."], ["Second doc here."]]


def test_wikitext_layout_gives_one_document_per_article_without_headings(tmp_path):
    path = tmp_path / "wiki.txt"
    path.write_text(
        " \n = Lobster = \n \n Lobsters are big . They live in the sea . \n \n = = Life = = \n \n Eggs hatch . \n"
        " \n = Crab = \n \n Crabs walk sideways . \n",
        encoding="utf-8",
    )
    assert load_documents(path) == [
        ["Lobsters are big .", "They live in the sea .", "Eggs hatch ."],
        ["Crabs walk sideways ."],
    ]


@needs_wikitext
def test_real_wikitext_articles():
    lines = WIKITEXT.read_text(encoding="utf-8").splitlines()
    titles = [line for line in lines if line.startswith(" = ") and not line.startswith(" = = ")]
    docs = load_documents(WIKITEXT)
    assert len(docs) == len(titles) > 10
    sentences = [s for doc in docs for s in doc]
    assert not any(s.startswith("=") for s in sentences)
    assert sum(len(doc) for doc in docs) > 5 * len(docs)  # articles, not single lines
    assert docs[0][0].startswith("Homarus gammarus , known as the European lobster")


def test_jsonl_parquet_and_datasets_agree(tmp_path):
    texts = ["One sentence. Two sentences.\nNew paragraph.", "Another document!"]
    expected = [["One sentence.", "Two sentences.", "New paragraph."], ["Another document!"]]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"body": t, "id": i}) for i, t in enumerate(texts)) + "\n")
    assert load_documents(jsonl, text_field="body") == expected

    dataset = datasets.Dataset.from_dict({"body": texts})
    parquet = tmp_path / "c.parquet"
    dataset.to_parquet(str(parquet))
    assert load_documents(parquet, text_field="body") == expected
    assert load_documents(dataset, text_field="body") == expected
    assert load_documents(dataset.to_iterable_dataset(), text_field="body") == expected
    assert load_documents([jsonl, parquet], text_field="body") == expected + expected
    assert documents_to_dataset(expected)["sentences"] == expected


def test_line_per_row_dataset_in_wikitext_layout():
    rows = ["", " = Title = ", "", " First line . Second line . ", " = = Sub = = ", " Third . ", " = Next = ", " X . "]
    dataset = datasets.Dataset.from_dict({"text": rows})
    assert load_documents(dataset, layout="wikitext") == [["First line .", "Second line .", "Third ."], ["X ."]]


def test_embedded_corpus_is_prose_without_code():
    docs = load_embedded_corpus()
    sentences = [s for doc in docs for s in doc]
    assert len(docs) >= 40 and len(sentences) >= 1000
    assert sum(map(len, sentences)) > 100_000
    assert all(len(doc) >= 2 for doc in docs)
    assert not any(">>>" in s or "::=" in s for s in sentences)
    assert any("statement" in s for s in sentences)


def test_empty_corpus_raises(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no usable documents"):
        load_documents(empty)
    with pytest.raises(ValueError, match="no usable documents"):
        load_documents(datasets.Dataset.from_dict({"text": ["", "  "]}))
    with pytest.raises(ValueError, match="not found"):
        load_documents(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="no documents"):
        documents_to_dataset([])


def test_empty_documents_are_skipped_and_counted(tmp_path, caplog):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "Good text. More."}\n{"text": ""}\n{"text": "   "}\n{"text": "Fine."}\n')
    with caplog.at_level(logging.INFO, logger="albert_recipes.corpus"):
        docs = load_documents(path)
    assert docs == [["Good text.", "More."], ["Fine."]]
    assert "skipped 2 empty documents" in caplog.text


def test_huge_line(tmp_path, caplog):
    path = tmp_path / "huge.txt"
    path.write_text("x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="max_sentence_chars=20000"):
        load_documents(path)
    # A huge line that does have sentence boundaries is simply split.
    path.write_text("This is fine. " * 20_000 + "\n", encoding="utf-8")
    assert len(load_documents(path)[0]) == 20_000
    # A document keeps its normal sentences; the overlong one is dropped and counted.
    path.write_text("Short one. " + "Y" * 30_000 + "\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="albert_recipes.corpus"):
        assert load_documents(path) == [["Short one."]]
    assert "skipped 1 sentences longer than max_sentence_chars" in caplog.text


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Good line.\n".encode() + "Caf\xe9 au lait.\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"offset 14 are not valid UTF-8"):
        load_documents(path)
    assert load_documents(path, errors="replace") == [["Good line.", "Caf\ufffd au lait."]]


def test_bad_options(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"content": "x"}\n')
    with pytest.raises(ValueError, match=r"c.jsonl:1: no 'text' field \(found \['content'\]\)"):
        load_documents(path)
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_documents(path)
    with pytest.raises(ValueError, match="layout='pages' is not allowed"):
        list(documents_from_lines(["a"], layout="pages"))
    with pytest.raises(ValueError, match="no 'body' column"):
        load_documents(datasets.Dataset.from_dict({"text": ["a"]}), text_field="body")


def test_csv_and_tsv_read_the_text_column_of_each_row(tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text('label\ttext\n1\tA "quoted" film. Good.\n\n0\tBad one.\n', encoding="utf-8")
    assert load_documents(tsv) == [['A "quoted" film.', "Good."], ["Bad one."]]
    csv_file = tmp_path / "c.csv"
    csv_file.write_text('text,label\n"Commas, inside. Fine.",1\n"Two\nlines.",0\n', encoding="utf-8")
    assert load_documents(csv_file) == [["Commas, inside.", "Fine."], ["Two", "lines."]]
    tsv.write_text("text\tlabel\nfine\t1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"c.tsv:1: no 'body' column in the header \(found \['text', 'label'\]\)"):
        load_documents(tsv, text_field="body")
    tsv.write_text("label\ttext\n1\tfine\n0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"c.tsv:3: 1 fields, the 'text' column is field 2 of 2"):
        load_documents(tsv)
    with pytest.raises(ValueError, match="is a directory"):
        load_documents(tmp_path)

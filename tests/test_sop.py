import math
import random

import datasets
import numpy as np
import pytest

from albert_recipes.corpus import documents_to_dataset, load_embedded_corpus
from albert_recipes.sop import build_sop_dataset, create_sop_instances, truncate_seq_pair

datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def documents():
    return load_embedded_corpus()[:60]


def _synthetic_corpus(num_docs=800, seed=0):
    """Documents of sentences whose token ids are their global position, so order is visible in the output."""
    rng = random.Random(seed)
    docs, next_id = [], 0
    for _ in range(num_docs):
        doc = []
        for _ in range(rng.randint(1, 12)):
            length = rng.randint(3, 30)
            doc.append(list(range(next_id, next_id + length)))
            next_id += length
        docs.append(doc)
    return docs


def test_order_labels_and_lengths_on_synthetic_documents():
    docs = _synthetic_corpus()
    doc_of = {t: d for d, doc in enumerate(docs) for segment in doc for t in segment}
    same_doc_labels, max_seq_length = [], 48
    for d, doc in enumerate(docs):
        other_document = lambda r, d=d: docs[(d + r.randint(1, len(docs) - 1)) % len(docs)]  # noqa: E731
        for a, b, label, from_other in create_sop_instances(doc, random.Random(d), max_seq_length, 0.1, other_document):
            assert a and b and len(a) + len(b) <= max_seq_length - 3
            assert all(doc_of[t] == d for t in a)
            assert from_other == (not all(doc_of[t] == d for t in b))
            if all(doc_of[t] == d for t in b):  # a real sentence-order example
                first, second = (a, b) if label == 0 else (b, a)
                assert max(first) < min(second)  # label 0: A precedes B in the source; label 1: swapped
                same_doc_labels.append(label)
            else:  # single-sentence chunk: B from another document, always label 1 as in the original
                assert label == 1 and len({doc_of[t] for t in b}) == 1
    n = len(same_doc_labels)
    assert n > 500
    assert abs(np.mean(same_doc_labels) - 0.5) < 3 * math.sqrt(0.25 / n)


def test_single_sentence_document_takes_b_from_another_document():
    docs = [[[1, 2, 3]], [[10, 11], [12, 13]]]
    instances = create_sop_instances(docs[0], random.Random(0), 16, 0.0, lambda r: docs[1])
    assert instances == [([1, 2, 3], [10, 11, 12, 13], 1, True)] or instances == [([1, 2, 3], [12, 13], 1, True)]


def test_truncate_seq_pair_trims_the_longer_side_from_both_ends():
    fronts = backs = 0
    for seed in range(200):
        a, b = list(range(20)), list(range(100, 105))
        truncate_seq_pair(a, b, 15, random.Random(seed))
        assert len(a) == 10 and b == list(range(100, 105))
        assert a == list(range(a[0], a[0] + 10))  # still a contiguous piece of A
        fronts += a[0] > 0
        backs += a[-1] < 19
    assert fronts > 150 and backs > 150


def test_build_sop_dataset_structure(documents, tiny_tokenizer):
    max_seq_length = 64
    ds = build_sop_dataset(documents, tiny_tokenizer, max_seq_length=max_seq_length, seed=7)
    assert set(ds.column_names) == {"input_ids", "token_type_ids", "sentence_order_label", "example_id",
                                    "document", "sop_random_document"}
    assert len(ds) > 500
    # B from a random other document (one-sentence chunks): always label 1, and not the only kind of pair
    assert 0 < sum(ds["sop_random_document"]) < len(ds) / 2
    assert all(label == 1 for label, other in zip(ds["sentence_order_label"], ds["sop_random_document"]) if other)
    cls, sep = tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id
    for row in ds:
        ids, types = row["input_ids"], row["token_type_ids"]
        assert len(ids) <= max_seq_length and len(types) == len(ids)
        assert ids[0] == cls and ids[-1] == sep and ids.count(sep) == 2 and ids.count(cls) == 1
        b_start = ids.index(sep) + 1
        assert types == [0] * b_start + [1] * (len(ids) - b_start) and len(ids) - b_start >= 2
    labels = np.array(ds["sentence_order_label"])
    same_document = ~np.array(ds["sop_random_document"], dtype=bool)
    # Same-document pairs are swapped half the time; forced label-1 pairs (single-sentence chunks) tilt the overall
    # balance a little, as in the original (how much depends on the corpus's share of short documents).
    assert 0.4 < labels[same_document].mean() < 0.6
    assert labels[same_document].mean() < labels.mean() < 0.7
    assert len(set(ds["example_id"])) == len(ds)
    assert max(map(len, ds["input_ids"])) == max_seq_length  # chunks are filled up to the target length


def test_deterministic_across_num_proc_and_sensitive_to_seed(documents, tiny_tokenizer):
    one = build_sop_dataset(documents, tiny_tokenizer, max_seq_length=64, seed=3, dupe_factor=2, num_proc=1)
    two = build_sop_dataset(documents, tiny_tokenizer, max_seq_length=64, seed=3, dupe_factor=2, num_proc=2)
    assert one.to_dict() == two.to_dict()
    other = build_sop_dataset(documents, tiny_tokenizer, max_seq_length=64, seed=4, dupe_factor=2)
    assert other["input_ids"] != one["input_ids"]
    single = build_sop_dataset(documents, tiny_tokenizer, max_seq_length=64, seed=3, dupe_factor=1)
    assert 1.7 * len(single) < len(one) < 2.3 * len(single)


def test_iterable_dataset(documents, tiny_tokenizer):
    stream = documents_to_dataset(documents).to_iterable_dataset()
    ds = build_sop_dataset(stream, tiny_tokenizer, max_seq_length=64, seed=3, batch_size=8)
    assert isinstance(ds, datasets.IterableDataset)
    rows = list(ds)
    assert rows == list(ds)  # the same stream gives the same examples
    assert len(rows) > 500 and all(len(r["input_ids"]) <= 64 for r in rows)
    assert {r["sentence_order_label"] for r in rows} == {0, 1}


def test_bad_input(tiny_tokenizer):
    with pytest.raises(ValueError, match="no documents"):
        build_sop_dataset([], tiny_tokenizer)
    with pytest.raises(ValueError, match="no SOP examples from 2 documents"):
        build_sop_dataset([[" "], ["  "]], tiny_tokenizer)
    with pytest.raises(ValueError, match="max_seq_length=4 must be at least 5"):
        build_sop_dataset([["A b."]], tiny_tokenizer, max_seq_length=4)
    with pytest.raises(ValueError, match="dupe_factor=0"):
        build_sop_dataset([["A b."]], tiny_tokenizer, dupe_factor=0)
    with pytest.raises(ValueError, match="no 'sentences' column"):
        build_sop_dataset(datasets.Dataset.from_dict({"text": ["a"]}), tiny_tokenizer)

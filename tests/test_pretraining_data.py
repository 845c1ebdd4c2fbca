"""The corpus-scale pretraining data pipeline: Arrow cache, fresh SOP cuts per epoch, streaming, held-out split."""

import json
import pickle
from collections import defaultdict

import datasets
import numpy as np
import pytest

import albert_recipes.pretraining_data as pretraining_data
import albert_recipes.sop as sop
import albert_recipes.tokenization as tokenization
from albert_recipes.corpus import load_documents, load_embedded_corpus
from albert_recipes.errors import InputError
from albert_recipes.pretraining_data import prepare_pretraining_data, split_indices

datasets.disable_progress_bars()


@pytest.fixture(scope="module")
def corpus_docs():
    return load_embedded_corpus()[:80]


@pytest.fixture
def corpus_file(tmp_path, corpus_docs):
    """Blank-line separated documents, one sentence per line."""
    path = tmp_path / "corpus.txt"
    path.write_text("\n\n".join("\n".join(doc) for doc in corpus_docs) + "\n", encoding="utf-8")
    return path


def _prepare(cache_dir, tokenizer, **kwargs):
    settings = dict(seed=3, eval_fraction=0.1, max_seq_length=64, short_seq_prob=0.1, dupe_factor=1)
    return prepare_pretraining_data(tokenizer=tokenizer, cache_dir=cache_dir, **{**settings, **kwargs})


def _pairs_by_document(dataset):
    pairs = defaultdict(list)
    for row in dataset:
        pairs[row["document"]].append((tuple(row["input_ids"]), row["sentence_order_label"]))
    return pairs


def test_fresh_cuts_every_epoch_and_same_round_is_the_same_whatever_num_proc(tmp_path, corpus_file, tiny_tokenizer):
    data = _prepare(tmp_path / "a", tiny_tokenizer, train_file=[str(corpus_file)], dupe_factor=2)
    epoch0, epoch1 = data.train_set(0), data.train_set(1)
    assert {"input_ids", "token_type_ids", "sentence_order_label", "example_id", "document",
            "sop_random_document"} <= set(epoch0.column_names)
    assert epoch0.cache_files and all(f["filename"].startswith(str(tmp_path / "a")) for f in epoch0.cache_files)
    by_doc0, by_doc1 = _pairs_by_document(epoch0), _pairs_by_document(epoch1)
    assert by_doc0.keys() == by_doc1.keys() and len(by_doc0) == data.num_train_documents
    multi = [d for d, pairs in by_doc0.items() if len(pairs) >= 2]
    assert len(multi) > 20
    changed = sum(by_doc0[d] != by_doc1[d] for d in multi)
    assert changed >= 0.9 * len(multi)  # new target lengths, boundaries and swaps for (almost) every document
    assert set(epoch0["example_id"]).isdisjoint(epoch1["example_id"])  # new masks too: ids key the masking rng

    # Epoch 1 again, from scratch in another cache with 2 worker processes, and from the first cache: same bits.
    again = _prepare(tmp_path / "b", tiny_tokenizer, train_file=[str(corpus_file)], dupe_factor=1, num_proc=2)
    assert again.train_set(1).to_dict() == epoch1.to_dict()
    assert again.train_set(0).to_dict() == epoch0.to_dict()
    assert again.eval_set.to_dict() == data.eval_set.to_dict()
    assert data.fingerprint == again.fingerprint  # neither dupe_factor nor num_proc changes what an epoch holds

    # Rounds past dupe_factor are built on demand; those two epochs old are deleted, the ones built ahead kept.
    again.train_set(2), again.train_set(3)
    rounds = {path.name.split("-round")[1].split("_")[0] for path in (tmp_path / "b").glob("sop-*-train-round*")}
    assert rounds == {"0", "2", "3"}


def test_held_out_split_is_by_document_and_deterministic(tmp_path, corpus_file, tiny_tokenizer):
    train, held_out = split_indices(100, 0.1, seed=5)
    assert len(held_out) == 10 and sorted([*train, *held_out]) == list(range(100))
    np.testing.assert_array_equal(held_out, split_indices(100, 0.1, seed=5)[1])
    assert set(held_out) != set(split_indices(100, 0.1, seed=6)[1])
    data = _prepare(tmp_path, tiny_tokenizer, train_file=[str(corpus_file)])
    eval_docs, train_docs = set(data.eval_set["document"]), set(data.train_set(0)["document"])
    assert eval_docs and eval_docs.isdisjoint(train_docs)
    num_documents = len(load_documents(corpus_file))
    assert data.num_eval_documents == round(0.1 * num_documents) >= len(eval_docs)
    assert data.num_train_documents == num_documents - data.num_eval_documents
    with pytest.raises(InputError, match="at least 2 are needed"):
        split_indices(1, 0.1, seed=0)


def test_streaming_and_map_style_give_the_same_examples(tmp_path, corpus_docs, tiny_tokenizer):
    folder = tmp_path / "jsonl"
    folder.mkdir()
    with open(folder / "part-0.jsonl", "w", encoding="utf-8") as f:
        for doc in corpus_docs:
            f.write(json.dumps({"body": " ".join(doc), "id": len(doc)}) + "\n")
    results = []
    for streaming in (False, True):
        data = _prepare(tmp_path / f"cache-{streaming}", tiny_tokenizer, dataset_name=str(folder),
                        text_column="body", streaming=streaming)
        results.append((data.eval_set.to_dict(), data.train_set(0).to_dict(), data.train_set(1).to_dict()))
    assert results[0] == results[1]
    assert len(results[0][1]["input_ids"]) > 300
    with open(folder / "part-0.jsonl", "a", encoding="utf-8") as f:  # a local dataset folder changes: read again
        f.write(json.dumps({"body": "A new document. It has two sentences.", "id": 0}) + "\n")
    changed = _prepare(tmp_path / "cache-True", tiny_tokenizer, dataset_name=str(folder), text_column="body",
                       streaming=True)
    assert changed.num_train_documents + changed.num_eval_documents == len(corpus_docs) + 1


def test_cache_is_reused_and_invalidated(tmp_path, corpus_file, monkeypatch):
    calls = defaultdict(int)

    def count(module, name):
        function = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    count(pretraining_data, "_generate_documents")  # reading the corpus
    count(tokenization, "train_tokenizer_on_documents")
    count(sop, "_tokenize_batch")
    count(sop, "_instances_batch")  # cutting SOP pairs
    cache = tmp_path / "cache"
    settings = dict(train_file=[str(corpus_file)], vocab_size=300, tokenizer=None)

    first = _prepare(cache, **settings)
    first_counts = dict(calls)
    assert first_counts["_generate_documents"] == 1 and first_counts["train_tokenizer_on_documents"] == 1
    assert first_counts["_tokenize_batch"] >= 1 and first_counts["_instances_batch"] >= 2  # train + eval

    calls.clear()
    second = _prepare(cache, **settings)  # a restart or a second run: everything comes from the cache
    assert dict(calls) == {}
    assert second.fingerprint == first.fingerprint
    assert second.train_set(0).to_dict() == first.train_set(0).to_dict()
    assert (tmp_path / "cache" / "documents").is_dir()

    calls.clear()
    _prepare(cache, **{**settings, "max_seq_length": 48})  # data settings change: only the cuts are redone
    assert calls["_instances_batch"] >= 2 and "_tokenize_batch" not in calls and "_generate_documents" not in calls

    calls.clear()
    other_tokenizer = _prepare(cache, **{**settings, "vocab_size": 250})  # another tokenizer: tokenize again
    assert calls["train_tokenizer_on_documents"] == 1 and calls["_tokenize_batch"] >= 1
    assert "_generate_documents" not in calls
    assert other_tokenizer.fingerprint != first.fingerprint and len(other_tokenizer.tokenizer) == 250

    calls.clear()
    corpus_file.write_text(corpus_file.read_text(encoding="utf-8") + "\nOne more document. It has two sentences.\n")
    changed = _prepare(cache, **settings)  # the corpus changed (size, mtime): read it again
    assert calls["_generate_documents"] == 1 and changed.fingerprint != first.fingerprint


def test_workers_get_the_memory_mapped_dataset_not_its_rows(tmp_path, corpus_file, tiny_tokenizer):
    data = _prepare(tmp_path, tiny_tokenizer, train_file=[str(corpus_file)])
    tokens_file = next(tmp_path.glob("tokens-*.arrow"))
    tokens = datasets.Dataset.from_file(str(tokens_file))
    pool = sop._DatasetPool(tokens.select(range(0, len(tokens), 2)))
    assert len(pickle.dumps(pool)) < 5_000 < tokens.data.nbytes  # file paths, not documents
    assert pool[3] == tokens[6]["segments"]
    in_memory = sop._DatasetPool(datasets.Dataset.from_dict(tokens.to_dict()))
    assert len(pickle.dumps(in_memory)) > tokens.data.nbytes // 2  # what the old in-memory pool cost per worker
    assert len(data.train_set(0)) > 0


def test_bad_input(tmp_path, tiny_tokenizer):
    with pytest.raises(InputError, match="file not found"):
        _prepare(tmp_path, tiny_tokenizer, train_file=[str(tmp_path / "missing.txt")])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n", encoding="utf-8")
    with pytest.raises(InputError, match="no usable documents"):  # one line, not datasets' generation traceback
        _prepare(tmp_path / "c", tiny_tokenizer, train_file=[str(empty)])
    with pytest.raises(InputError, match="dupe_factor=0"):
        _prepare(tmp_path / "c", tiny_tokenizer, train_file=[str(empty)], dupe_factor=0)
    with pytest.raises(InputError, match="not both"):
        _prepare(tmp_path / "c", tiny_tokenizer, train_file=[str(empty)], dataset_name="wikitext")


def test_tokenizer_fingerprint_ignores_the_last_calls_truncation_and_padding(tiny_tokenizer):
    from albert_recipes.pretraining_data import tokenizer_fingerprint

    before = tokenizer_fingerprint(tiny_tokenizer)
    tiny_tokenizer(["one two three four five"] * 2, truncation=True, max_length=3, padding="max_length")
    assert tokenizer_fingerprint(tiny_tokenizer) == before
    tiny_tokenizer(["one two"])  # back to no truncation: the state changes again, the fingerprint does not
    assert tokenizer_fingerprint(tiny_tokenizer) == before

"""Word2Vec initialisation of the factorized word embeddings: rows come from the trained vectors, deterministically."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import albert_recipes
from albert_recipes.word_vectors import init_embeddings_from_word2vec, init_word_embeddings, train_word2vec

SPECIAL = (0, 1, 2, 3, 4)  # pad, unk, cls, sep, mask in the tokenizers this package trains
TOPICS = (range(10, 30), range(30, 50))  # two disjoint "topics" of 20 tokens each; ids 50..63 never occur


def _sequences(seed=0, count=400, length=24):
    """Each sequence mixes tokens of one topic and wraps them in [CLS] ... [SEP] like an SOP example."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        topic = TOPICS[i % 2]
        body = rng.choice(np.asarray(topic), size=length).tolist()
        out.append([2, *body, 3])
    return out


def _model():
    torch.manual_seed(0)
    config = albert_recipes.AlbertRecipesConfig.from_preset(
        "tiny", vocab_size=64, embedding_size=16, hidden_size=32, num_attention_heads=2, intermediate_size=64,
        num_hidden_layers=2)
    return albert_recipes.AlbertRecipesForPreTraining(config)


def _cosine(matrix, a, b):
    rows = torch.nn.functional.normalize(matrix, dim=-1)
    return (rows[list(a)] @ rows[list(b)].T).mean().item()


def test_frequent_tokens_rows_come_from_the_trained_vectors():
    model = _model()
    before = model.get_input_embeddings().weight.detach().clone()
    rows = init_embeddings_from_word2vec(model, _sequences(), seed=7, special_ids=SPECIAL)
    after = model.get_input_embeddings().weight.detach()
    assert rows == 40  # every topic token, and nothing else

    ids, vectors = train_word2vec(_sequences(), 16, seed=7, skip_ids=SPECIAL)
    assert sorted(ids.tolist()) == list(range(10, 50))
    centred = vectors - vectors.mean(axis=0)
    expected = torch.from_numpy(centred * (model.config.initializer_range / centred.std()))
    torch.testing.assert_close(after[torch.from_numpy(ids)], expected)
    # entries on the initializer's scale; special tokens and unseen pieces keep their random rows
    assert after[10:50].std().item() == pytest.approx(model.config.initializer_range, rel=1e-3)
    untouched = [*SPECIAL, *range(5, 10), *range(50, 64)]
    torch.testing.assert_close(after[untouched], before[untouched], rtol=0, atol=0)
    # the masked-LM decoder is tied to these embeddings, so the output side starts from the same vectors
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    # what Word2Vec learned is in the rows: tokens of one topic are closer to each other than across topics,
    # which a random initialisation does not show
    a, b = TOPICS
    assert _cosine(after, a, a) - _cosine(after, a, b) > 0.3
    assert abs(_cosine(before, a, a) - _cosine(before, a, b)) < 0.1


def test_vectors_of_the_wrong_width_or_ids_outside_the_vocabulary_are_refused():
    embedding = torch.nn.Embedding(10, 4)
    with pytest.raises(ValueError, match="vector_size=4"):
        init_word_embeddings(embedding, np.arange(3), np.ones((3, 5), dtype=np.float32), 0.02)
    with pytest.raises(ValueError, match="model has 10 embeddings"):
        init_word_embeddings(embedding, np.array([3, 12]), np.ones((2, 4), dtype=np.float32), 0.02)
    with pytest.raises(ValueError, match="no tokens to train on"):
        train_word2vec([[2, 3], [2, 3]], 4, seed=0, skip_ids=(2, 3))


_DETERMINISM = """
import json, sys
sys.path.insert(0, {tests!r})
from test_word_vectors import _sequences
from albert_recipes.word_vectors import train_word2vec
ids, vectors = train_word2vec(_sequences(), 16, seed={seed}, skip_ids=(0, 1, 2, 3, 4))
print(json.dumps([ids.tolist(), vectors.round(7).tolist()]))
"""


def _as_json(ids, vectors):
    return json.loads(json.dumps([ids.tolist(), vectors.round(7).tolist()]))


def test_deterministic_for_a_seed_whatever_the_hash_seed():
    here = _as_json(*train_word2vec(_sequences(), 16, seed=7, skip_ids=SPECIAL))
    # a fresh process whose str hashes are salted differently from this one's
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    code = _DETERMINISM.format(tests=os.path.dirname(__file__), seed=7)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONHASHSEED": hash_seed})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == here
    assert _as_json(*train_word2vec(_sequences(), 16, seed=8, skip_ids=SPECIAL)) != here

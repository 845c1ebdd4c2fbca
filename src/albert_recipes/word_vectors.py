"""Word2Vec initialisation of ALBERT's factorized word embeddings (the product brief's "word vectors" step).

`train_word2vec` trains gensim's Word2Vec (CBOW, E dimensions) on token-id sequences of the training corpus, as the
model's own tokenizer cut them, so every vector belongs to exactly one row of the embedding matrix.
`init_word_embeddings` writes those vectors into the (vocab, E) word-embedding matrix, rescaled so that their
entries have the standard deviation of the model's normal initializer (`initializer_range`): the rest of the
network sees inputs of the size it was initialised for. Rows of tokens Word2Vec never saw (special tokens, pieces
absent from the training text) keep their random initialisation. ALBERT ties the masked-LM decoder to these
embeddings, so the output side starts from the same geometry.

Deterministic for a seed: one worker thread, a fixed seed, and no use of Python's salted `hash` (gensim's
`hashfxn` is replaced by a CRC so that PYTHONHASHSEED does not matter); vocabulary ties keep first-seen order.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .errors import InputError


def _stable_hash(text: str) -> int:
    # gensim's default is the builtin `hash`, salted per process for str; a CRC is the same in every process
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(
    sequences: Iterable[Sequence[int]],
    vector_size: int,
    seed: int,
    *,
    skip_ids: Iterable[int] = (),
    window: int = 5,
    epochs: int = 5,
    min_count: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Train CBOW Word2Vec on token-id sequences; returns (token ids, vectors of shape (len(ids), vector_size)).

    `skip_ids` (special tokens such as [CLS]/[SEP]/[PAD]) are removed from the sequences first. Tokens seen fewer
    than `min_count` times get no vector (a vector trained on one occurrence is mostly noise).
    """
    from gensim.models import Word2Vec

    if vector_size < 1:
        raise InputError(f"Word2Vec vector_size={vector_size} must be at least 1")
    skip = set(int(i) for i in skip_ids)
    corpus = [[str(int(i)) for i in seq if int(i) not in skip] for seq in sequences]
    corpus = [words for words in corpus if words]
    if not corpus:
        raise InputError("Word2Vec got no tokens to train on (every sequence empty or made of special tokens)")
    model = Word2Vec(
        sentences=corpus, vector_size=vector_size, window=window, min_count=min_count, sg=0, negative=5,
        epochs=epochs, seed=seed, workers=1, hashfxn=_stable_hash,
    )
    ids = np.asarray([int(key) for key in model.wv.index_to_key], dtype=np.int64)
    return ids, np.asarray(model.wv.vectors, dtype=np.float32)


@torch.no_grad()
def init_word_embeddings(embedding: torch.nn.Embedding, ids: np.ndarray, vectors: np.ndarray, std: float) -> int:
    """Copy `vectors` into rows `ids` of `embedding`, centred and scaled to entries of standard deviation `std`.

    Centring removes the direction every Word2Vec vector shares (mostly word frequency), which would otherwise
    dominate the dot products of the tied decoder. Returns the number of rows set.
    """
    if vectors.ndim != 2 or vectors.shape[1] != embedding.embedding_dim:
        raise InputError(f"Word2Vec vectors of shape {tuple(vectors.shape)} do not fit the word embeddings "
                         f"({embedding.num_embeddings}, {embedding.embedding_dim}): train them with "
                         f"vector_size={embedding.embedding_dim}")
    if len(ids) and (ids.min() < 0 or ids.max() >= embedding.num_embeddings):
        raise InputError(f"Word2Vec token ids span [{ids.min()}, {ids.max()}] but the model has "
                         f"{embedding.num_embeddings} embeddings; use the tokenizer the model was built for")
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    scaled = centred * (std / max(float(centred.std()), 1e-12))
    weight = embedding.weight
    weight[torch.as_tensor(ids)] = torch.as_tensor(scaled, dtype=weight.dtype, device=weight.device)
    return len(ids)


def init_embeddings_from_word2vec(model, sequences: Iterable[Sequence[int]], seed: int, special_ids: Iterable[int],
                                  **word2vec_kwargs) -> int:
    """Train Word2Vec with the model's embedding width on `sequences` and initialise its word embeddings from it.

    `model` is any ALBERT model of this package (its `get_input_embeddings()` is the factorized (vocab, E)
    matrix); returns the number of embedding rows set from Word2Vec.
    """
    embedding = model.get_input_embeddings()
    ids, vectors = train_word2vec(sequences, embedding.embedding_dim, seed, skip_ids=special_ids, **word2vec_kwargs)
    return init_word_embeddings(embedding, ids, vectors, model.config.initializer_range)


__all__ = ["init_embeddings_from_word2vec", "init_word_embeddings", "train_word2vec"]

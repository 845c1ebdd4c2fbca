"""Fill-mask samples on held-out text: what a person looks at to judge a masked-LM export, beside the accuracy.

`fill_mask_samples(model, examples, tokenizer)` takes SOP examples (token ids, as the pretraining recipe holds its
held-out set), masks one whole word in the first segment of each, and asks transformers' `fill-mask` pipeline for
the export's top guesses. The masked word is a single-piece word of at least three letters (a word split into
pieces cannot be filled with one [MASK]), chosen with a fixed seed, so every run shows the same sentences.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

WORD_START = "\u2581"  # SentencePiece's word-boundary mark


def _maskable_positions(pieces: list[str]) -> list[int]:
    """Positions of single-piece words (the next piece starts a new word) of >= 3 letters."""
    positions = []
    for i, piece in enumerate(pieces):
        word = piece[1:] if piece.startswith(WORD_START) else ""
        next_starts_word = i + 1 == len(pieces) or pieces[i + 1].startswith(WORD_START)
        if len(word) >= 3 and word.isalpha() and next_starts_word:
            positions.append(i)
    return positions


def masked_sentences(examples: Sequence[Sequence[int]], tokenizer: Any, num: int, seed: int) -> list[dict]:
    """Up to `num` dicts {"text": segment A with one word replaced by the mask token, "answer": that word}."""
    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    out = []
    for index in order:
        ids = list(examples[index])
        first_sep = ids.index(tokenizer.sep_token_id) if tokenizer.sep_token_id in ids else len(ids)
        segment = [i for i in ids[:first_sep] if i not in tokenizer.all_special_ids]
        pieces = tokenizer.convert_ids_to_tokens(segment)
        positions = _maskable_positions(pieces)
        if len(segment) < 8 or not positions:
            continue
        pos = rng.choice(positions)
        left, right = tokenizer.decode(segment[:pos]), tokenizer.decode(segment[pos + 1:])
        out.append({"text": f"{left} {tokenizer.mask_token} {right}".strip(), "answer": pieces[pos][1:]})
        if len(out) == num:
            break
    return out


def fill_mask_samples(model: str | Path | Any, examples: Sequence[Sequence[int]], tokenizer: Any, num: int = 5,
                      seed: int = 0, top_k: int = 5) -> list[dict]:
    """`masked_sentences` filled by `model` (an export's folder or a masked-LM model in memory): adds "predictions"
    (top_k tokens, best first) and "hit" (whether the masked word is among them)."""
    from transformers import pipeline

    samples = masked_sentences(examples, tokenizer, num, seed)
    if not samples:
        return []
    if isinstance(model, (str, Path)):
        model = str(model)
    elif not hasattr(model, "get_output_embeddings") or hasattr(model, "sop_classifier"):
        raise TypeError("fill_mask_samples needs an export folder or a masked-LM model; for a pretraining model "
                        "pass masked_lm_view(model)")
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer, top_k=top_k)
    for sample in samples:
        guesses = fill(sample["text"])
        sample["predictions"] = [g["token_str"].strip() for g in guesses]
        sample["hit"] = sample["answer"] in sample["predictions"]
    return samples


def masked_lm_view(pretraining_model: Any) -> Any:
    """An `AlbertRecipesForMaskedLM` sharing (not copying) a pretraining model's encoder and MLM head, so that
    transformers' fill-mask pipeline (which reads `.logits`) can use a model still in memory."""
    from .modeling_albert_recipes import AlbertRecipesForMaskedLM

    config = pretraining_model.config
    view = AlbertRecipesForMaskedLM(config)
    view.albert, view.predictions = pretraining_model.albert, pretraining_model.predictions
    return view.eval()


def format_samples(samples: list[dict]) -> str:
    """One line per sample: the masked text, the hidden word, the guesses."""
    return "\n".join(f"  {s['text']}\n    -> {', '.join(s['predictions'])}   (answer: {s['answer']})"
                     for s in samples)


__all__ = ["fill_mask_samples", "format_samples", "masked_lm_view", "masked_sentences"]

"""Reference ports of google-research/albert `create_pretraining_data.py` (commit 0cf7f57), for golden tests.

Ported by reading the original (Apache-2.0) and restating it in plain Python with the same control flow and the
same order of random draws, for the SOP configuration ALBERT used: `random_next_sentence=False` (B is a random
document's text only when the chunk has a single segment) and `masked_lm_prob=0`, which returns from
`create_masked_lm_predictions` before it touches the random generator. Our pipeline masks later, in the collator,
with its own generator; with masking off, the original's random stream per document is exactly the cutting
stream, so both implementations can be fed the same `random.Random` and must agree draw for draw.
"""

from __future__ import annotations

import random

# The original's set: the characters of '!"#$%&\"()*+,-./:;?@[\\]^_`{|}~' (no apostrophe, '<', '=' or '>'), plus
# "€" and "£" added as UTF-8 *bytes*, which never equal a str piece under Python 3.
_SPECIAL_PIECES = set('!"#$%&"()*+,-./:;?@[\\]^_`{|}~') | {"€".encode(), "£".encode()}
_ENGLISH = set("abcdefghijklmnopqrstuvwxyz")


def is_start_piece_sp(piece: str) -> bool:
    """`_is_start_piece_sp`: a piece starts a word unless it is made only of ASCII letters and that punctuation."""
    return (
        piece.startswith("▁")
        or piece.startswith("<")
        or piece in _SPECIAL_PIECES
        or not all(str(ch).lower() in _ENGLISH | _SPECIAL_PIECES for ch in piece)
    )


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_num_tokens: int, rng: random.Random) -> None:
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        assert longer
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def create_instances_from_document(all_documents, document_index, max_seq_length, short_seq_prob, rng):
    """(tokens_a, tokens_b, is_random_next) per instance, before [CLS]/[SEP] are added (they take no draws)."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    current_chunk, current_length = [], 0
    i = 0
    while i < len(document):
        current_chunk.append(document[i])
        current_length += len(document[i])
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = rng.randint(1, len(current_chunk) - 1) if len(current_chunk) >= 2 else 1
                tokens_a = [t for segment in current_chunk[:a_end] for t in segment]
                tokens_b = []
                if len(current_chunk) == 1:  # random_next_sentence=False: only here is B from elsewhere
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    i -= len(current_chunk) - a_end  # "put back" unused segments: always 0 here
                elif rng.random() < 0.5:  # sentence-order swap
                    is_random_next = True
                    tokens_b = [t for segment in current_chunk[a_end:] for t in segment]
                    tokens_a, tokens_b = tokens_b, tokens_a
                else:
                    is_random_next = False
                    tokens_b = [t for segment in current_chunk[a_end:] for t in segment]
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                assert tokens_a and tokens_b
                # create_masked_lm_predictions(..., masked_lm_prob=0, ...) returns here without drawing
                instances.append((tokens_a, tokens_b, is_random_next))
            current_chunk, current_length = [], 0
        i += 1
    return instances

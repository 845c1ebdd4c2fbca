"""Golden tests against ports of google-research/albert `create_pretraining_data.py` (tests/albert_reference.py).

What is compared, and why it can be: with masking off, the original's random stream is exactly the cutting stream
(target length, A/B boundary, swap, random document and start, truncation ends), so our builder and the port are fed
the same `random.Random` per document and must produce the same pairs and leave the generator in the same state.
What differs by design and is not compared: the original uses one generator for the whole corpus (cutting and
masking interleaved, plus numpy's global generator for n-gram lengths); we key a generator per (seed, document,
round) so that epochs, workers and resumes do not shift each other, mask later in the collator with its own
generator per example, draw random documents from the training split only, and leave the final shuffle to the
sampler.
"""

import random
from pathlib import Path

import datasets
import pytest

from albert_reference import create_instances_from_document, is_start_piece_sp
from albert_recipes.corpus import load_documents
from albert_recipes.masking import NgramMaskingCollator, is_start_piece
from albert_recipes.sop import _document_rng, _pick_from, _tokenize_batch, create_sop_instances, sop_examples

datasets.disable_progress_bars()
WIKITEXT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "wikitext-2" / "valid.txt"


@pytest.fixture(scope="module")
def tokenized_wikitext(tiny_tokenizer):
    """Real text: WikiText-2 articles (or the embedded corpus without the shared data), tokenized per sentence."""
    if WIKITEXT.is_file():
        documents = load_documents(WIKITEXT)
    else:  # pragma: no cover - the shared data is beside every checkout and CI
        from albert_recipes.corpus import load_embedded_corpus

        documents = load_embedded_corpus()[:60]
    batch = _tokenize_batch({"sentences": documents}, tokenizer=tiny_tokenizer, column="sentences")
    return [segments for segments in batch["segments"] if segments]


@pytest.mark.parametrize("max_seq_length, short_seq_prob", [(128, 0.1), (48, 0.5)])
def test_create_sop_instances_matches_the_original_draw_for_draw(tokenized_wikitext, max_seq_length, short_seq_prob):
    documents = tokenized_wikitext
    compared = random_b = swapped = 0
    for index in range(len(documents)):
        ours_rng, theirs_rng = random.Random(index), random.Random(index)
        ours = create_sop_instances(documents[index], ours_rng, max_seq_length, short_seq_prob,
                                    _pick_from(documents, index))
        theirs = create_instances_from_document(documents, index, max_seq_length, short_seq_prob, theirs_rng)
        assert [(a, b, bool(label)) for a, b, label, _ in ours] == theirs, f"document {index}"
        assert ours_rng.getstate() == theirs_rng.getstate()  # the same number and order of draws
        compared += len(ours)
        random_b += sum(from_other for *_, from_other in ours)
        swapped += sum(label and not from_other for _, _, label, from_other in ours)
    assert compared > 300 and swapped > 50  # real sentence-order pairs, both orders
    if max_seq_length == 48:
        assert random_b > 5  # short targets give single-sentence chunks, whose B comes from another document


def test_sop_builder_cuts_every_document_as_the_original(tokenized_wikitext, tiny_tokenizer):
    """The dataset builder (what `train_set(epoch)` runs) = the port fed our per-(seed, document, round) generator."""
    documents = tokenized_wikitext
    tokenized = datasets.Dataset.from_dict({"segments": documents, "document": list(range(len(documents)))})
    seed, dupe_round, max_seq_length = 11, 3, 96
    examples = sop_examples(tokenized, tiny_tokenizer, [dupe_round], max_seq_length, 0.2, seed, batch_size=7)
    cls, sep = tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id
    expected = []
    for index in range(len(documents)):
        rng = _document_rng(seed, index, dupe_round)
        for a, b, is_random_next in create_instances_from_document(documents, index, max_seq_length, 0.2, rng):
            expected.append(([cls, *a, sep, *b, sep], int(is_random_next), index))
    assert list(zip(examples["input_ids"], examples["sentence_order_label"], examples["document"])) == expected
    assert len(expected) > 300


def test_word_starts_match_is_start_piece_sp(tiny_tokenizer):
    pieces = ["▁the", "s", "ing", ".", ",", ".,", "'s", "'", "1", "▁1", "99", "é", "naïve", "€", "£", "<unk>", "<",
              "=", ">", "-", "--", "\\", "ab\\", "İ", "Ab", "ẞ", "▁"]
    vocabulary = tiny_tokenizer.convert_ids_to_tokens(list(range(len(tiny_tokenizer))))
    for piece in pieces + vocabulary:
        assert is_start_piece(piece) == is_start_piece_sp(piece), piece
    collator = NgramMaskingCollator(tiny_tokenizer)
    assert collator.starts_word.tolist() == [is_start_piece_sp(p) for p in vocabulary]
    # Not the ▁-only rule: continuation pieces that are punctuation, digits or non-ASCII start words too.
    assert any(is_start_piece_sp(p) and not p.startswith("▁") for p in vocabulary)

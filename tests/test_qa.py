"""Extractive QA: feature building with offsets/stride, and n-best decoding on hand-made logits."""

import datasets
import numpy as np
import pytest

from albert_recipes import qa

CONTEXT = "abc def ghi"
# [CLS] question [SEP] abc def ghi [SEP]: only the context tokens carry offsets
OFFSETS = [None, None, None, [0, 3], [4, 7], [8, 11], None]


def _logits(**peaks):
    values = np.zeros(len(OFFSETS), dtype=np.float32)
    for index, value in peaks.items():
        values[int(index[1:])] = value
    return values


def _decode(starts, ends, **kwargs):
    examples = [{"id": "e", "context": CONTEXT}]
    features = [{"example_id": "e", "offset_mapping": OFFSETS}]
    predictions, nbest = qa.postprocess_qa_predictions(examples, features, [starts], [ends], **kwargs)
    return predictions["e"], nbest["e"]


def test_answers_at_both_context_edges():
    assert _decode(_logits(i3=5), _logits(i3=5))[0] == "abc"
    assert _decode(_logits(i5=5), _logits(i5=5))[0] == "ghi"
    assert _decode(_logits(i3=5), _logits(i5=5))[0] == "abc def ghi"


def test_question_tokens_spans_too_long_and_backwards_spans_are_skipped():
    # the question token 1 has the highest logits but no offsets: never part of an answer
    assert _decode(_logits(i1=50, i4=3), _logits(i1=50, i4=3))[0] == "def"
    # best pair (3 -> 5) spans 3 tokens; with max_answer_length=2 the best allowed pair is (5 -> 5)
    starts, ends = _logits(i3=5, i5=4), _logits(i5=5, i3=1)
    assert _decode(starts, ends)[0] == "abc def ghi"
    text, nbest = _decode(starts, ends, max_answer_length=2)
    assert text == "ghi"
    assert nbest[0]["score"] == pytest.approx(9.0)
    assert all(c["text"] != "abc def ghi" for c in nbest)
    assert sum(c["probability"] for c in nbest) == pytest.approx(1.0)


def test_impossible_answer_uses_the_null_score():
    starts, ends = _logits(i0=10, i4=3), _logits(i0=10, i4=3)
    assert _decode(starts, ends, version_2_with_negative=True)[0] == ""  # null 20 beats span 6
    assert _decode(starts, ends, version_2_with_negative=True, null_score_diff_threshold=100.0)[0] == "def"
    assert _decode(starts, ends)[0] == "def"  # SQuAD v1: always a span


def test_best_span_over_several_windows_and_minimum_null_score():
    examples = [{"id": "e", "context": CONTEXT}]
    features = [{"example_id": "e", "offset_mapping": OFFSETS}] * 2
    starts = [_logits(i0=1, i3=2), _logits(i0=8, i5=7)]
    ends = [_logits(i0=1, i3=2), _logits(i0=8, i5=7)]
    predictions, _ = qa.postprocess_qa_predictions(examples, features, starts, ends)
    assert predictions["e"] == "ghi"  # score 14 in window 2 beats 4 in window 1
    # v2: the null score is the minimum over windows (2), so the span (14) wins
    predictions, _ = qa.postprocess_qa_predictions(examples, features, starts, ends, version_2_with_negative=True)
    assert predictions["e"] == "ghi"
    with pytest.raises(ValueError, match="2 features but 1 start"):
        qa.postprocess_qa_predictions(examples, features, starts[:1], ends)


def _squad(rows):
    return datasets.Dataset.from_list(rows)


def test_validate_rejects_answers_not_in_context():
    good = {"id": "a", "question": "q?", "context": "paris is big", "answers": {"text": ["paris"], "answer_start": [0]}}
    qa.validate_qa_examples(_squad([good]))
    bad = {**good, "id": "b", "answers": {"text": ["london"], "answer_start": [0]}}
    with pytest.raises(ValueError, match=r"example 'b': answer 'london' is not in the context at answer_start=0"):
        qa.validate_qa_examples(_squad([good, bad]))


def test_long_context_windows_with_stride_round_trip(tiny_tokenizer):
    filler = " ".join(f"word{i}" for i in range(60))
    context = f"Paris opens the text. {filler} and the text ends in London"
    rows = [
        {"id": "start", "question": "which city opens?", "context": context,
         "answers": {"text": ["Paris"], "answer_start": [0]}},
        {"id": "end", "question": "which city ends?", "context": context,
         "answers": {"text": ["London"], "answer_start": [context.index("London")]}},
        {"id": "none", "question": "which river?", "context": context, "answers": {"text": [], "answer_start": []}},
    ]
    examples = _squad(rows)
    train = qa.build_train_features(examples, tiny_tokenizer, max_length=48, stride=12)
    evaluation = qa.build_eval_features(examples, tiny_tokenizer, max_length=48, stride=12)
    assert len(train) == len(evaluation) > 3 * 2  # the context needs several windows per question
    assert all(len(ids) == 48 for ids in train["input_ids"])
    per_example = {}
    for example_id, start in zip(evaluation["example_id"], train["start_positions"]):
        per_example.setdefault(example_id, []).append(start)
    # 'start' is answerable in the first window only, 'end' in the last only, 'none' nowhere
    assert per_example["start"][0] > 0 and all(s == 0 for s in per_example["start"][1:])
    assert per_example["end"][-1] > 0 and all(s == 0 for s in per_example["end"][:-1])
    assert all(s == 0 for s in per_example["none"])
    # decoding one-hot logits at the labelled positions recovers the exact answer text
    starts = np.eye(48, dtype=np.float32)[train["start_positions"]]
    ends = np.eye(48, dtype=np.float32)[train["end_positions"]]
    predictions, _ = qa.postprocess_qa_predictions(examples, evaluation, starts, ends, version_2_with_negative=True)
    assert predictions == {"start": "Paris", "end": "London", "none": ""}

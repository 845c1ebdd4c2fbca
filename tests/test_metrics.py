"""Offline metrics against values computed by hand (the arithmetic is in the comments)."""

import math

import evaluate
import numpy as np
import pytest

from albert_recipes import metrics


def test_classification_metrics_binary():
    predictions, references = [1, 0, 1, 1], [1, 1, 0, 1]
    scores = metrics.classification_metrics(predictions, references, num_labels=2)
    assert scores["accuracy"] == pytest.approx(0.5)  # items 0 and 3 right
    assert scores["f1"] == pytest.approx(2 / 3)  # TP=2, predicted=3, actual=3 -> 2*2/(3+3)
    # TP=2 TN=0 FP=1 FN=1 -> (2*0 - 1*1) / sqrt(3*3*1*1)
    assert scores["matthews_correlation"] == pytest.approx(-1 / 3)


def test_macro_f1_and_multiclass_matthews():
    predictions, references = [0, 1, 2, 2, 1, 0], [0, 1, 2, 1, 1, 2]
    # per class F1: 0 -> 2*1/(2+1), 1 -> 2*2/(2+3), 2 -> 2*1/(2+2)
    expected_f1 = (2 / 3 + 4 / 5 + 1 / 2) / 3
    # correct c=4, samples s=6, predicted counts (2,2,2), true counts (1,3,2):
    # (c*s - p.t) / sqrt((s^2 - p.p)(s^2 - t.t)) = (24 - 12) / sqrt(24 * 22)
    scores = metrics.classification_metrics(predictions, references, num_labels=3)
    assert scores["f1"] == pytest.approx(expected_f1)
    assert scores["matthews_correlation"] == pytest.approx(12 / math.sqrt(24 * 22))
    binary_f1 = metrics.F1(keep_in_memory=True).compute(predictions=[1, 0, 1, 1], references=[1, 1, 0, 1])
    assert binary_f1["f1"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="average"):
        metrics.F1(keep_in_memory=True).compute(predictions=[1], references=[1], average="weighted")


def test_metrics_are_evaluate_metrics_with_batches():
    accuracy = metrics.Accuracy(keep_in_memory=True)
    assert isinstance(accuracy, evaluate.Metric)
    accuracy.add_batch(predictions=[1, 1], references=[1, 0])
    accuracy.add_batch(predictions=[0], references=[0])
    assert accuracy.compute()["accuracy"] == pytest.approx(2 / 3)


def test_pearson_spearman_with_ties():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 4.0]
    scores = metrics.regression_metrics(x, y)
    # deviations x: (-1.5,-.5,.5,1.5), y: (-1.75,.25,1.25,.25): sum xy = 3.5, sum x^2 = 5, sum y^2 = 4.75
    assert scores["pearson"] == pytest.approx(3.5 / math.sqrt(5 * 4.75))
    # y ranks with the tie averaged: (1, 2.5, 4, 2.5) -> deviations (-1.5, 0, 1.5, 0): 3 / sqrt(5 * 4.5)
    assert scores["spearmanr"] == pytest.approx(3 / math.sqrt(5 * 4.5))
    assert scores["mse"] == pytest.approx((1 + 4 + 4 + 0) / 4)
    assert math.isnan(metrics.regression_metrics([1.0, 1.0], [0.0, 2.0])["pearson"])


def test_entity_f1_and_lenient_iob():
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "O"]]
    predictions = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "O", "O"]]
    # gold PER(0-1) LOC(3) ORG(1-2); predicted PER(0-1) ORG(3) ORG(1): only PER matches type and boundaries
    scores = metrics.entity_metrics(predictions, references)
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)
    assert scores["accuracy"] == pytest.approx(6 / 8)
    assert metrics.iob_entities(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"]) == {
        ("PER", 1, 2), ("LOC", 3, 3), ("ORG", 4, 4)}
    assert metrics.iob_entities(["B-PER", "B-PER", "I-PER"]) == {("PER", 0, 0), ("PER", 1, 2)}
    with pytest.raises(ValueError, match="X-PER"):
        metrics.iob_entities(["X-PER"])
    with pytest.raises(ValueError, match="sentence 0"):
        metrics.entity_metrics([["O"]], [["O", "O"]])


def test_degenerate_cases_score_zero_or_nan_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn/scipy/seqeval warnings would be noise in every run's log
        # nobody predicts or has the positive class: TP = predicted = actual = 0 -> F1 0 (evaluate's convention)
        assert metrics.classification_metrics([0, 0], [0, 0], num_labels=2)["f1"] == 0.0
        # a constant prediction: MCC's denominator is 0 -> 0; accuracy 2/3
        scores = metrics.classification_metrics([1, 1, 1], [1, 0, 1], num_labels=2)
        assert scores["matthews_correlation"] == 0.0 and scores["accuracy"] == pytest.approx(2 / 3)
        assert math.isnan(metrics.regression_metrics([1.0, 1.0], [0.0, 2.0])["spearmanr"])
        assert math.isnan(metrics.regression_metrics([1.0], [2.0])["pearson"])
        # no predicted entities: precision 0/0 -> 0, recall 0/1, F1 0; tokens 2 of 3 right
        scores = metrics.entity_metrics([["O", "O", "O"]], [["B-PER", "O", "O"]])
        assert (scores["precision"], scores["recall"], scores["f1"]) == (0.0, 0.0, 0.0)
        assert scores["accuracy"] == pytest.approx(2 / 3)
    # IOBES tags are read too: S-LOC is a one-word entity, B-PER E-PER a two-word one
    assert metrics.iob_entities(["S-LOC", "B-PER", "E-PER"]) == {("LOC", 0, 0), ("PER", 1, 2)}


def test_squad_exact_match_and_f1():
    assert metrics.normalize_answer("The  Cat, sat!") == "cat sat"
    predictions = [
        {"id": "a", "prediction_text": "the cat sat"},  # equals the 2nd gold after normalisation
        {"id": "b", "prediction_text": "big red dog"},  # 2 of 3 tokens shared with "red dog house": F1 2/3
        {"id": "c", "prediction_text": ""},  # unanswerable, answered "": right
        {"id": "d", "prediction_text": "paris"},  # unanswerable, answered: wrong
    ]
    references = [
        {"id": "a", "answers": {"text": ["a cat sat on the mat", "Cat sat."], "answer_start": [0, 2]}},
        {"id": "b", "answers": {"text": ["red dog house"], "answer_start": [0]}},
        {"id": "c", "answers": {"text": [], "answer_start": []}},
        {"id": "d", "answers": {"text": [], "answer_start": []}},
    ]
    scores = metrics.squad_metrics(predictions, references)
    assert scores["exact_match"] == pytest.approx(100 * 2 / 4)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0) / 4)
    with pytest.raises(ValueError, match="unknown example id 'zz'"):
        metrics.squad_metrics([{"id": "zz", "prediction_text": "x"}], references[:1])


def test_confusion_matrix_and_plot(tmp_path):
    matrix = metrics.confusion_matrix([0, 1, 1, 2], [0, 0, 1, 2], num_labels=3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    # a class that occurs nowhere still gets its row and column
    np.testing.assert_array_equal(metrics.confusion_matrix([0, 0], [0, 1], num_labels=3),
                                  [[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    path = metrics.plot_confusion_matrix(matrix, ["neg", "neu", "pos"], tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

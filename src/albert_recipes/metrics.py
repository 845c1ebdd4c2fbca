"""Offline task metrics written against `evaluate`'s Metric API (no `evaluate.load`, so nothing is downloaded).

Each class is a real `evaluate.Metric`: `compute(predictions=..., references=...)`, `add_batch(...)` and
distributed gathering all work as for Hub metrics. Classification scores are fractions in [0, 1]; `SquadMetric`
reports exact match and F1 in percent, like the official SQuAD script and `evaluate.load("squad")`.
"""

from __future__ import annotations

import collections
import re
import string
from pathlib import Path

import datasets
import evaluate
import numpy as np

from .errors import InputError

_INT_PAIR = datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")})
_FLOAT_PAIR = datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")})
_TAG_SEQUENCES = datasets.Features(
    {
        "predictions": datasets.Sequence(datasets.Value("string")),
        "references": datasets.Sequence(datasets.Value("string")),
    }
)
_SQUAD = datasets.Features(
    {
        "predictions": {"id": datasets.Value("string"), "prediction_text": datasets.Value("string")},
        "references": {
            "id": datasets.Value("string"),
            "answers": datasets.Sequence({"text": datasets.Value("string"), "answer_start": datasets.Value("int32")}),
        },
    }
)


def _info(name: str, description: str, features: datasets.Features) -> evaluate.MetricInfo:
    return evaluate.MetricInfo(description=description, citation="", features=features, module_name=name)


def _per_class_f1(predictions: np.ndarray, references: np.ndarray, label: int) -> float:
    true_pos = np.sum((predictions == label) & (references == label))
    predicted = np.sum(predictions == label)
    actual = np.sum(references == label)
    return float(2 * true_pos / (predicted + actual)) if predicted + actual else 0.0


class Accuracy(evaluate.Metric):
    def _info(self):
        return _info("accuracy", "Fraction of predictions equal to the reference label.", _INT_PAIR)

    def _compute(self, predictions, references):
        return {"accuracy": float(np.mean(np.asarray(predictions) == np.asarray(references)))}


class F1(evaluate.Metric):
    """`average="binary"` scores `pos_label` only; `"macro"` averages over every label seen in either list."""

    def _info(self):
        return _info("f1", "F1 score, binary or macro-averaged.", _INT_PAIR)

    def _compute(self, predictions, references, average: str = "binary", pos_label: int = 1):
        predictions, references = np.asarray(predictions), np.asarray(references)
        if average == "binary":
            return {"f1": _per_class_f1(predictions, references, pos_label)}
        if average == "macro":
            labels = np.union1d(predictions, references)
            return {"f1": float(np.mean([_per_class_f1(predictions, references, label) for label in labels]))}
        raise InputError(f"unknown average {average!r}; choose 'binary' or 'macro'")


class MatthewsCorrelation(evaluate.Metric):
    """Matthews correlation, in its multi-class form (Gorodkin 2004), which equals the usual phi for 2 classes."""

    def _info(self):
        return _info("matthews_correlation", "Matthews correlation coefficient.", _INT_PAIR)

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions), np.asarray(references)
        labels = np.union1d(predictions, references)
        matrix = confusion_matrix(
            np.searchsorted(labels, predictions), np.searchsorted(labels, references), len(labels)
        ).astype(np.float64)
        samples, correct = matrix.sum(), np.trace(matrix)
        predicted, actual = matrix.sum(axis=0), matrix.sum(axis=1)
        numerator = correct * samples - predicted @ actual
        denominator = np.sqrt((samples**2 - predicted @ predicted) * (samples**2 - actual @ actual))
        return {"matthews_correlation": float(numerator / denominator) if denominator else 0.0}


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties sharing their mean rank, as Spearman's coefficient requires."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denominator) if denominator else float("nan")


class PearsonSpearman(evaluate.Metric):
    """Correlations for regression tasks (STS-B style); NaN when either list is constant."""

    def _info(self):
        return _info("pearson_spearman", "Pearson and Spearman correlation.", _FLOAT_PAIR)

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions, np.float64), np.asarray(references, np.float64)
        return {
            "pearson": _pearson(predictions, references),
            "spearmanr": _pearson(_average_ranks(predictions), _average_ranks(references)),
        }


def iob_entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """Entity spans `(type, start, end_inclusive)` from IOB2 tags, read leniently like seqeval's default mode:
    an `I-X` after `O` or after another type opens a new entity instead of being dropped."""
    entities, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, tag_kind = tag.partition("-")
        if prefix not in ("B", "I", "O"):
            raise InputError(f"tag {tag!r} at position {i} is not IOB2; use O, B-TYPE or I-TYPE")
        continues = prefix == "I" and tag_kind == kind
        if start is not None and not continues:
            entities.add((kind, start, i - 1))
            start, kind = None, None
        if prefix in ("B", "I") and not continues:
            start, kind = i, tag_kind
    return entities


class SeqevalF1(evaluate.Metric):
    """Entity-level precision/recall/F1 (an entity counts only if type and both boundaries match) plus the
    token accuracy, like `seqeval.metrics` on IOB2 tags."""

    def _info(self):
        return _info("seqeval", "Entity-level F1 for IOB2 tag sequences.", _TAG_SEQUENCES)

    def _compute(self, predictions, references):
        true_pos = predicted = actual = correct_tokens = tokens = 0
        for sentence, (pred_tags, ref_tags) in enumerate(zip(predictions, references)):
            if len(pred_tags) != len(ref_tags):
                raise InputError(f"sentence {sentence}: {len(pred_tags)} predicted tags for {len(ref_tags)} references")
            pred_entities, ref_entities = iob_entities(pred_tags), iob_entities(ref_tags)
            true_pos += len(pred_entities & ref_entities)
            predicted += len(pred_entities)
            actual += len(ref_entities)
            correct_tokens += sum(p == r for p, r in zip(pred_tags, ref_tags))
            tokens += len(ref_tags)
        precision = true_pos / predicted if predicted else 0.0
        recall = true_pos / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "accuracy": correct_tokens / tokens if tokens else 0.0,
        }


def normalize_answer(text: str) -> str:
    """The official SQuAD normalisation: lower case, drop punctuation and articles, squeeze whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, truth: str) -> float:
    pred_tokens, truth_tokens = normalize_answer(prediction).split(), normalize_answer(truth).split()
    if not pred_tokens or not truth_tokens:
        # SQuAD v2 rule: an empty answer scores 1 only against an empty answer
        return float(pred_tokens == truth_tokens)
    common = sum((collections.Counter(pred_tokens) & collections.Counter(truth_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


class SquadMetric(evaluate.Metric):
    """SQuAD exact match and token F1 in percent, best over the gold answers. An example with no gold answers is
    unanswerable (SQuAD v2): only the empty prediction "" scores on it."""

    def _info(self):
        return _info("squad", "SQuAD v1/v2 exact match and F1.", _SQUAD)

    def _compute(self, predictions, references):
        gold_by_id = {ref["id"]: ref["answers"]["text"] or [""] for ref in references}
        exact = f1 = 0.0
        for pred in predictions:
            if pred["id"] not in gold_by_id:
                raise InputError(f"prediction for unknown example id {pred['id']!r}")
            golds = gold_by_id[pred["id"]]
            exact += max(float(normalize_answer(pred["prediction_text"]) == normalize_answer(g)) for g in golds)
            f1 += max(_token_f1(pred["prediction_text"], g) for g in golds)
        count = max(len(predictions), 1)
        return {"exact_match": 100.0 * exact / count, "f1": 100.0 * f1 / count}


def confusion_matrix(predictions, references, num_labels: int) -> np.ndarray:
    """(num_labels, num_labels) counts; rows are the true label, columns the prediction."""
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(references), np.asarray(predictions)), 1)
    return matrix


def classification_metrics(predictions, references, num_labels: int) -> dict[str, float]:
    """Accuracy, F1 (binary for 2 labels, macro otherwise) and Matthews correlation."""
    average = "binary" if num_labels == 2 else "macro"
    scores = {}
    for metric, kwargs in ((Accuracy, {}), (F1, {"average": average}), (MatthewsCorrelation, {})):
        scores.update(metric(keep_in_memory=True).compute(predictions=predictions, references=references, **kwargs))
    return scores


def regression_metrics(predictions, references) -> dict[str, float]:
    scores = PearsonSpearman(keep_in_memory=True).compute(predictions=predictions, references=references)
    scores["mse"] = float(np.mean((np.asarray(predictions) - np.asarray(references)) ** 2))
    return scores


def entity_metrics(predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
    return SeqevalF1(keep_in_memory=True).compute(predictions=predictions, references=references)


def squad_metrics(predictions: list[dict], references: list[dict]) -> dict[str, float]:
    return SquadMetric(keep_in_memory=True).compute(predictions=predictions, references=references)


def plot_confusion_matrix(matrix: np.ndarray, label_names: list[str], path: str | Path) -> Path:
    """Save a labelled confusion-matrix heat map (PNG) with the count in every cell."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    size = max(3.5, 0.6 * len(label_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color)
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"confusion matrix (accuracy {accuracy:.3f})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

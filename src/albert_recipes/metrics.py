"""Offline task metrics written against `evaluate`'s Metric API (no `evaluate.load`, so nothing is downloaded).

The numbers come from maintained libraries, as the Hub's metric scripts compute them: scikit-learn (accuracy, F1,
Matthews correlation, confusion matrix), scipy (Pearson, Spearman) and seqeval (entity-level scores); only SQuAD's
exact match and F1 are written here (see the note above `normalize_answer`). Each class is a real `evaluate.Metric`: `compute(predictions=..., references=...)`, `add_batch(...)` and
distributed gathering all work as for Hub metrics. Classification scores are fractions in [0, 1]; `SquadMetric`
reports exact match and F1 in percent, like the official SQuAD script and `evaluate.load("squad")`.
"""

from __future__ import annotations

import collections
import re
import string
import warnings
from pathlib import Path

import datasets
import evaluate
import numpy as np
import scipy.stats
from seqeval.metrics import sequence_labeling as seqeval_labeling
from sklearn import metrics as sklearn_metrics

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


class Accuracy(evaluate.Metric):
    def _info(self):
        return _info("accuracy", "Fraction of predictions equal to the reference label.", _INT_PAIR)

    def _compute(self, predictions, references):
        return {"accuracy": float(sklearn_metrics.accuracy_score(references, predictions))}


class F1(evaluate.Metric):
    """`average="binary"` scores `pos_label` only; `"macro"` averages over every label seen in either list."""

    def _info(self):
        return _info("f1", "F1 score, binary or macro-averaged.", _INT_PAIR)

    def _compute(self, predictions, references, average: str = "binary", pos_label: int = 1):
        if average not in ("binary", "macro"):
            raise InputError(f"unknown average {average!r}; choose 'binary' or 'macro'")
        # labels: binary F1 of pos_label even when only one class occurs; zero_division: F1 of a class nobody
        # predicts or has is 0 (as evaluate's f1), without sklearn's warning
        labels = [pos_label] if average == "binary" else None
        score = sklearn_metrics.f1_score(references, predictions, labels=labels, average="macro" if labels else average,
                                         zero_division=0)
        return {"f1": float(score)}


class MatthewsCorrelation(evaluate.Metric):
    """Matthews correlation, in its multi-class form (Gorodkin 2004), which equals the usual phi for 2 classes."""

    def _info(self):
        return _info("matthews_correlation", "Matthews correlation coefficient.", _INT_PAIR)

    def _compute(self, predictions, references):
        with warnings.catch_warnings():  # one class in both lists: the coefficient is 0, the warning is noise
            warnings.filterwarnings("ignore", "A single label was found", UserWarning)
            return {"matthews_correlation": float(sklearn_metrics.matthews_corrcoef(references, predictions))}


class PearsonSpearman(evaluate.Metric):
    """Correlations for regression tasks (STS-B style); NaN when either list is constant or shorter than 2."""

    def _info(self):
        return _info("pearson_spearman", "Pearson and Spearman correlation.", _FLOAT_PAIR)

    def _compute(self, predictions, references):
        predictions, references = np.asarray(predictions, np.float64), np.asarray(references, np.float64)
        if len(predictions) < 2:
            return {"pearson": float("nan"), "spearmanr": float("nan")}
        with warnings.catch_warnings():  # a constant list: scipy warns and returns NaN, which is the answer
            warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
            return {
                "pearson": float(scipy.stats.pearsonr(predictions, references).statistic),
                "spearmanr": float(scipy.stats.spearmanr(predictions, references).statistic),
            }


def _check_tags(tags: list[str], sentence: int | None = None) -> None:
    for i, tag in enumerate(tags):
        prefix, dash, kind = tag.partition("-")
        if tag != "O" and not (prefix in ("B", "I", "E", "S") and dash and kind):
            where = f"sentence {sentence}, " if sentence is not None else ""
            raise InputError(f"{where}tag {tag!r} at position {i} is not IOB2/IOBES; use O, B-TYPE or I-TYPE")


def iob_entities(tags: list[str]) -> set[tuple[str, int, int]]:
    """Entity spans `(type, start, end_inclusive)` from IOB2 tags, as seqeval's default (lenient) mode reads them:
    an `I-X` after `O` or after another type opens a new entity instead of being dropped."""
    _check_tags(tags)
    return set(seqeval_labeling.get_entities(list(tags)))


class SeqevalF1(evaluate.Metric):
    """Entity-level precision/recall/F1 (micro-averaged; an entity counts only if type and both boundaries match)
    plus the token accuracy, computed by `seqeval` in its default mode, as `evaluate.load("seqeval")` does."""

    def _info(self):
        return _info("seqeval", "Entity-level F1 for IOB2 tag sequences.", _TAG_SEQUENCES)

    def _compute(self, predictions, references):
        predictions, references = [list(p) for p in predictions], [list(r) for r in references]
        for sentence, (pred_tags, ref_tags) in enumerate(zip(predictions, references)):
            if len(pred_tags) != len(ref_tags):
                raise InputError(f"sentence {sentence}: {len(pred_tags)} predicted tags for {len(ref_tags)} references")
            _check_tags(pred_tags, sentence)
            _check_tags(ref_tags, sentence)
        kwargs = {"average": "micro", "zero_division": 0}
        return {
            "precision": float(seqeval_labeling.precision_score(references, predictions, **kwargs)),
            "recall": float(seqeval_labeling.recall_score(references, predictions, **kwargs)),
            "f1": float(seqeval_labeling.f1_score(references, predictions, **kwargs)),
            "accuracy": float(seqeval_labeling.accuracy_score(references, predictions)) if predictions else 0.0,
        }


# SQuAD stays hand-written (the official v2 script's normalisation and token F1, ~20 lines): evaluate's "squad" and
# "squad_v2" are Hub scripts that `evaluate.load` must download, and transformers 5 removed the copy it shipped in
# transformers.data.metrics.squad_metrics; no maintained offline package we depend on implements it.
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
    return sklearn_metrics.confusion_matrix(references, predictions, labels=list(range(num_labels))).astype(np.int64)


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


def trivial_baselines(references: list, kind: str, num_labels: int = 0, train_references: list | None = None
                      ) -> dict[str, float]:
    """The scores of a model that learnt nothing, with the same metric functions, for scale beside real scores.

    kind "classification": always the most frequent class (of `train_references` if given, else of `references`);
    "regression": always the mean; "tags": every word tagged with the most frequent tag (usually O). Keys are
    prefixed with what the constant is: majority_class_accuracy, mean_prediction_mse, majority_tag_f1, ...
    """
    source = train_references if train_references is not None else references
    if kind == "classification":
        majority = collections.Counter(source).most_common(1)[0][0]
        scores = classification_metrics([majority] * len(references), references, num_labels)
        return {f"majority_class_{k}": v for k, v in scores.items()}
    if kind == "regression":
        mean = float(np.mean(source))
        return {"mean_prediction_mse": float(np.mean((np.asarray(references, np.float64) - mean) ** 2))}
    if kind == "tags":
        majority = collections.Counter(tag for tags in source for tag in tags).most_common(1)[0][0]
        scores = entity_metrics([[majority] * len(tags) for tags in references], references)
        return {f"majority_tag_{k}": v for k, v in scores.items()}
    raise InputError(f"unknown baseline kind {kind!r}; choose 'classification', 'regression' or 'tags'")


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

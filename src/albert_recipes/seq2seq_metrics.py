"""Offline generation metrics behind `evaluate`'s Metric API: ROUGE (Google's `rouge-score`) and BLEU/chrF
(`sacrebleu`), so nothing is downloaded (`evaluate.load("rouge")` would fetch a script from the Hub).

Scales follow the `evaluate` Hub metrics they replace: ROUGE F-measures are fractions in [0, 1] (like
`evaluate.load("rouge")`), BLEU and chrF are 0-100 (like `evaluate.load("sacrebleu")` / `"chrf"`). ROUGE is the
mean over examples of the per-example F-measure; with several references an example scores its best one, as
`rouge_score.RougeScorer.score_multi` defines. `rougeLsum` treats newlines as sentence boundaries.
"""

from __future__ import annotations

import logging

import datasets
import evaluate
import numpy as np

from .errors import InputError

logging.getLogger("absl").setLevel(logging.WARNING)  # rouge-score logs "Using default tokenizer." per scorer

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")

# one reference per prediction, or a list of references (the layout evaluate's own rouge/sacrebleu accept)
_TEXT_FEATURES = [
    datasets.Features(
        {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
    ),
    datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
]


def _info(name: str, description: str) -> evaluate.MetricInfo:
    return evaluate.MetricInfo(description=description, citation="", features=_TEXT_FEATURES, module_name=name)


def _reference_lists(predictions, references) -> list[list[str]]:
    if len(predictions) != len(references):
        raise InputError(f"{len(predictions)} predictions for {len(references)} references; give one each")
    if not predictions:
        raise InputError("no predictions to score")
    lists = [[ref] if isinstance(ref, str) else list(ref) for ref in references]
    empty = [i for i, refs in enumerate(lists) if not refs]
    if empty:
        raise InputError(f"example {empty[0]} has an empty list of references; every prediction needs at least one")
    return lists


class Rouge(evaluate.Metric):
    """ROUGE-1/2/L/Lsum F-measures; `use_stemmer=True` applies the Porter stemmer as the official script's -m."""

    def _info(self):
        return _info("rouge", "ROUGE F-measure (rouge-score), mean over examples.")

    def _compute(self, predictions, references, rouge_types=ROUGE_TYPES, use_stemmer: bool = True):
        from rouge_score import rouge_scorer

        unknown = sorted(set(rouge_types) - set(ROUGE_TYPES))
        if unknown:
            raise InputError(f"unknown rouge_types {unknown}; choose from {list(ROUGE_TYPES)}")
        scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=use_stemmer)
        per_example = [
            scorer.score_multi(refs, prediction)
            for prediction, refs in zip(predictions, _reference_lists(predictions, references))
        ]
        return {kind: float(np.mean([scores[kind].fmeasure for scores in per_example])) for kind in rouge_types}


class SacreBleu(evaluate.Metric):
    """Corpus BLEU and chrF with sacrebleu's defaults (13a tokenization, exponential smoothing; chrF: char 6-grams,
    beta 2). Every prediction needs the same number of references, as sacrebleu requires."""

    def _info(self):
        return _info("sacrebleu", "Corpus BLEU and chrF (sacrebleu).")

    def _compute(self, predictions, references, lowercase: bool = False):
        import sacrebleu

        lists = _reference_lists(predictions, references)
        counts = {len(refs) for refs in lists}
        if len(counts) != 1:
            raise InputError(f"BLEU needs the same number of references per prediction, got counts {sorted(counts)}")
        streams = [list(stream) for stream in zip(*lists)]  # sacrebleu wants one list per reference position
        bleu = sacrebleu.corpus_bleu(predictions, streams, lowercase=lowercase)
        chrf = sacrebleu.corpus_chrf(predictions, streams)
        return {"bleu": float(bleu.score), "chrf": float(chrf.score)}


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Share of predictions equal to their reference after whitespace normalisation (case kept)."""
    lists = _reference_lists(predictions, references)
    hits = [" ".join(p.split()) in {" ".join(r.split()) for r in refs} for p, refs in zip(predictions, lists)]
    return float(np.mean(hits))


def generation_metrics(predictions: list[str], references: list) -> dict[str, float]:
    """ROUGE-1/2/L/Lsum (0-1), BLEU and chrF (0-100), exact match (0-1) and mean prediction length in words."""
    scores = Rouge(keep_in_memory=True).compute(predictions=predictions, references=references)
    scores.update(SacreBleu(keep_in_memory=True).compute(predictions=predictions, references=references))
    scores["exact_match"] = exact_match(predictions, references)
    scores["prediction_words"] = float(np.mean([len(p.split()) for p in predictions]))
    return scores


__all__ = ["ROUGE_TYPES", "Rouge", "SacreBleu", "exact_match", "generation_metrics"]

"""Masked-LM and sentence-order statistics for pretraining, per example, and the trivial baselines beside them.

Statistics are computed per example (one row of `STATS` each), so that held-out rows can be gathered with
`accelerator.gather_for_metrics` (which drops the samples a prepared DataLoader repeats to even out the last batch)
and training rows summed locally and reduced at logging time. Sums, not means, travel between processes: a mean of
process means would weigh uneven shards wrongly.

SOP accuracy is reported three ways. Google's builder (and ours) pairs a chunk of one sentence with a segment of a
random other document and always labels it 1 ("swapped"): those pairs are trivially recognisable (the topic
changes) and always have the same label. Only the same-document pairs, swapped or not with probability 0.5, test
the order prediction the paper reports (86.5% for ALBERT-base), with 50% as chance.

MLM accuracy is reported twice. Over all predicted positions, as BERT and ALBERT report it: with the 80/10/10 rule
a tenth of those positions show their own token, so a model that ignores the context (copy the visible token,
answer the unigram token at [MASK]) already scores ~0.1 + 0.9 x unigram: that context-free baseline is reported
beside it. And over the positions whose input is [MASK] (`mlm_masked_accuracy`), where only the context can help:
its baseline is the unigram token's share of those positions. The loss there (`mlm_masked_loss`) is the more
sensitive measure: any use of the context brings it below the cross-entropy of the training data's unigram
distribution on the same positions (`mlm_masked_unigram_loss`), before the top guess moves off "the".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

STATS = (
    "mlm_loss", "mlm_correct", "mlm_count", "mlm_unigram_correct",
    "mlm_masked_correct", "mlm_masked_count", "mlm_masked_unigram_correct", "mlm_context_free_correct",
    "mlm_masked_loss", "mlm_masked_unigram_loss",
    "sop_loss", "sop_correct", "sop_count",
    "sop_same_document_correct", "sop_same_document_count",
    "sop_random_document_correct", "sop_random_document_count",
)
_COLUMN = {name: i for i, name in enumerate(STATS)}


def example_stats(out, batch: dict, random_document: torch.Tensor | None = None,
                  unigram_token_id: int | None = None, mask_token_id: int | None = None,
                  unigram_log_probs: torch.Tensor | None = None) -> torch.Tensor:
    """(B, len(STATS)) float64 statistics of one batch, one row per example (per packed example for packed rows).

    `out`: the `*ForPreTraining` output; its `prediction_logits` are (B, T, V), or (N_masked, V) in row-major order
    of the masked positions with the sparse head. `random_document`: (B,) 1 where B came from another document
    (None: unknown, the split columns stay 0). `unigram_token_id`: count the masked labels equal to it (the
    accuracy of always predicting that token). `mask_token_id`: also count the positions whose input is [MASK]
    (None: those columns stay 0). `unigram_log_probs`: (V,) log-probabilities of the unigram model, scored on the
    [MASK] positions.
    """
    labels = batch["labels"]
    masked = labels != -100  # (B, T)
    logits = out.prediction_logits.float()
    if logits.dim() == 3:
        logits = logits[masked]  # (N_masked, V), the order the sparse head uses
    targets = labels[masked]  # (N_masked,)
    sop_logits = out.sop_logits.float()  # (B, 2), or (N, 2) for N packed examples
    num_examples = sop_logits.shape[0]
    if num_examples == labels.shape[0]:
        example = torch.arange(num_examples, device=labels.device)[:, None].expand_as(labels)  # (B, T)
    else:  # packed rows (albert_recipes.packing): an example starts wherever the position ids restart at 0
        example = (batch["position_ids"] == 0).flatten().cumsum(0).view_as(labels) - 1  # (R, W) row-major
    owner = example[masked]  # (N_masked,) the example each masked token belongs to
    rows = torch.zeros(num_examples, len(STATS), dtype=torch.float64, device=labels.device)

    def per_example(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(num_examples, dtype=torch.float64, device=labels.device).index_add_(
            0, owner, values.double())

    token_loss = F.cross_entropy(logits, targets, reduction="none")  # (N_masked,)
    rows[:, _COLUMN["mlm_loss"]] = per_example(token_loss)
    hit = (logits.argmax(-1) == targets).double()  # (N_masked,)
    is_unigram = (targets == unigram_token_id).double() if unigram_token_id is not None else None
    rows[:, _COLUMN["mlm_correct"]] = per_example(hit)
    rows[:, _COLUMN["mlm_count"]] = per_example(torch.ones_like(targets, dtype=torch.float64))
    if is_unigram is not None:
        rows[:, _COLUMN["mlm_unigram_correct"]] = per_example(is_unigram)
    if mask_token_id is not None:
        shown = batch["input_ids"][masked]  # (N_masked,) what the model saw at each predicted position
        is_mask = shown == mask_token_id
        at_mask = is_mask.double()
        rows[:, _COLUMN["mlm_masked_correct"]] = per_example(hit * at_mask)
        rows[:, _COLUMN["mlm_masked_count"]] = per_example(at_mask)
        rows[:, _COLUMN["mlm_masked_loss"]] = per_example(token_loss * at_mask)
        if unigram_log_probs is not None:
            unigram_loss = -unigram_log_probs.to(targets.device)[targets].double()
            rows[:, _COLUMN["mlm_masked_unigram_loss"]] = per_example(unigram_loss * at_mask)
        if is_unigram is not None:
            guess = torch.where(is_mask, unigram_token_id, shown)  # copy what is visible
            rows[:, _COLUMN["mlm_masked_unigram_correct"]] = per_example(is_unigram * at_mask)
            rows[:, _COLUMN["mlm_context_free_correct"]] = per_example((guess == targets).double())

    sop_labels = batch["sentence_order_label"]
    correct = (sop_logits.argmax(-1) == sop_labels).double()
    rows[:, _COLUMN["sop_loss"]] = F.cross_entropy(sop_logits, sop_labels, reduction="none").double()
    rows[:, _COLUMN["sop_correct"]] = correct
    rows[:, _COLUMN["sop_count"]] = 1.0
    if random_document is not None:
        other = random_document.double()
        rows[:, _COLUMN["sop_random_document_correct"]] = correct * other
        rows[:, _COLUMN["sop_random_document_count"]] = other
        rows[:, _COLUMN["sop_same_document_correct"]] = correct * (1 - other)
        rows[:, _COLUMN["sop_same_document_count"]] = 1 - other
    return rows


def summarize(sums: torch.Tensor, prefix: str) -> dict[str, float]:
    """Metrics from summed `STATS` (all examples of all processes): `{prefix}/mlm_loss`, ... and the SOP split."""
    s = {name: float(v) for name, v in zip(STATS, sums.tolist())}
    metrics = {
        f"{prefix}/mlm_loss": s["mlm_loss"] / max(s["mlm_count"], 1),
        f"{prefix}/mlm_accuracy": s["mlm_correct"] / max(s["mlm_count"], 1),
        f"{prefix}/sop_loss": s["sop_loss"] / max(s["sop_count"], 1),
        f"{prefix}/sop_accuracy": s["sop_correct"] / max(s["sop_count"], 1),
        f"{prefix}/sop_examples": s["sop_count"],
    }
    if s["mlm_masked_count"] > 0:  # the positions whose input is [MASK]: only the context tells the answer
        metrics[f"{prefix}/mlm_masked_accuracy"] = s["mlm_masked_correct"] / s["mlm_masked_count"]
        metrics[f"{prefix}/mlm_masked_loss"] = s["mlm_masked_loss"] / s["mlm_masked_count"]
    if s["sop_same_document_count"] + s["sop_random_document_count"] > 0:  # the builder said where B came from
        for part in ("same_document", "random_document"):
            count = s[f"sop_{part}_count"]
            metrics[f"{prefix}/sop_{part}_accuracy"] = s[f"sop_{part}_correct"] / count if count else float("nan")
            metrics[f"{prefix}/sop_{part}_examples"] = count
    return metrics


@torch.no_grad()
def evaluate(model, loader, accelerator, unigram_token_id: int | None = None, mask_token_id: int | None = None,
             unigram_log_probs: torch.Tensor | None = None) -> tuple[dict[str, float], torch.Tensor]:
    """Held-out metrics over a DataLoader prepared by `accelerator`, each example counted once on any number of
    processes (`gather_for_metrics` drops the examples repeated to even out the last batch); also the raw sums."""
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(STATS), dtype=torch.float64, device=accelerator.device)
    for batch in loader:
        random_document = batch.pop("sop_random_document", None)
        rows = example_stats(model(**batch), batch, random_document, unigram_token_id, mask_token_id,
                             unigram_log_probs)
        sums += accelerator.gather_for_metrics(rows).sum(0)
    model.train(was_training)
    return summarize(sums, "eval"), sums


def unigram_accuracy(sums: torch.Tensor) -> float:
    """Accuracy of always predicting the unigram token, from held-out sums made with `unigram_token_id`."""
    return float(sums[_COLUMN["mlm_unigram_correct"]] / max(float(sums[_COLUMN["mlm_count"]]), 1.0))


def context_free_baselines(sums: torch.Tensor) -> dict[str, float]:
    """From held-out sums made with `unigram_token_id` (and `mask_token_id`): what a model that ignores the context
    scores: the unigram token over all predicted positions; with the mask id also copy-the-visible-token accuracy
    (the unigram token at [MASK]) and, at the [MASK] positions, the unigram token's accuracy and the unigram model's
    loss. The recipe's and the re-scoring script's MLM baselines, in that order."""
    s = {name: float(v) for name, v in zip(STATS, sums.tolist())}
    if not s["mlm_masked_count"]:
        return {"mlm_unigram_accuracy": unigram_accuracy(sums)}
    return {"mlm_unigram_accuracy": unigram_accuracy(sums),
            "mlm_context_free_accuracy": s["mlm_context_free_correct"] / max(s["mlm_count"], 1.0),
            "mlm_masked_unigram_accuracy": s["mlm_masked_unigram_correct"] / s["mlm_masked_count"],
            "mlm_masked_unigram_loss": s["mlm_masked_unigram_loss"] / s["mlm_masked_count"]}


def _spread_sample(dataset, max_examples: int):
    """At most `max_examples` rows spread evenly over the dataset (unshuffled sets are in document order)."""
    step = max(1, -(-len(dataset) // max_examples))
    return dataset.select(range(0, len(dataset), step)) if step > 1 else dataset


def unigram_log_probs(train_set, special_ids, vocab_size: int, max_examples: int = 20000) -> torch.Tensor:
    """(V,) log-probabilities of the unigram model of (up to `max_examples` of) the training examples' `input_ids`:
    add-one counts over the non-special tokens (special tokens get -inf: masking never predicts them).

    Masking picks whole words uniformly among the non-special tokens, so the masked labels follow the token
    frequencies; counting tokens needs no pass of the masking collator over the training data. Its argmax is the
    unigram token.
    """
    sample = _spread_sample(train_set, max_examples)["input_ids"]
    counts = np.bincount(np.concatenate([np.asarray(ids, dtype=np.int64) for ids in sample]),
                         minlength=vocab_size)[:vocab_size].astype(np.float64) + 1.0
    counts[list(special_ids)] = 0.0
    with np.errstate(divide="ignore"):
        return torch.from_numpy(np.log(counts / counts.sum()))


def sop_majority_baselines(train_set, eval_set, max_examples: int = 200_000) -> dict[str, float]:
    """Accuracy of always answering the training data's majority SOP label, on the held-out pairs: overall and per
    kind of pair (each kind with its own majority label, from up to `max_examples` training pairs). Random-document
    pairs are always labelled 1, so their baseline is 100%; same-document pairs sit near 50%."""
    train_set = _spread_sample(train_set, max_examples)
    train_labels = np.asarray(train_set["sentence_order_label"])
    eval_labels = np.asarray(eval_set["sentence_order_label"])
    baselines = {"sop_majority_accuracy": _majority_accuracy(train_labels, eval_labels)}
    if "sop_random_document" in train_set.column_names and "sop_random_document" in eval_set.column_names:
        train_other = np.asarray(train_set["sop_random_document"]).astype(bool)
        eval_other = np.asarray(eval_set["sop_random_document"]).astype(bool)
        for part, train_mask, eval_mask in (("same_document", ~train_other, ~eval_other),
                                            ("random_document", train_other, eval_other)):
            baselines[f"sop_{part}_majority_accuracy"] = _majority_accuracy(train_labels[train_mask],
                                                                             eval_labels[eval_mask])
    return baselines


def _majority_accuracy(train_labels: np.ndarray, eval_labels: np.ndarray) -> float:
    if len(eval_labels) == 0:
        return float("nan")
    majority = int(np.bincount(train_labels, minlength=2).argmax()) if len(train_labels) else 1
    return float((eval_labels == majority).mean())


def curve_panels(baselines: dict[str, float]) -> list[dict]:
    """`albert_recipes.training.plot_curves` panels for pretraining: MLM loss, MLM accuracy, SOP accuracy."""
    return [
        {"title": "MLM loss", "series": ["train/mlm_loss", "eval/mlm_loss", "eval/mlm_masked_loss"],
         "labels": ["train, all predicted", "held-out, all predicted", "held-out, at [MASK] inputs"],
         "baselines": {"unigram model at [MASK] inputs": baselines["mlm_masked_unigram_loss"]}
         if "mlm_masked_unigram_loss" in baselines else {}},
        {"title": "MLM accuracy", "series": ["train/mlm_accuracy", "eval/mlm_accuracy", "eval/mlm_masked_accuracy"],
         "labels": ["train, all predicted", "held-out, all predicted", "held-out, at [MASK] inputs"],
         "baselines": {label: baselines[key] for label, key in (
             ("unigram token, all predicted", "mlm_unigram_accuracy"),
             ("context-free (copy visible, unigram at [MASK])", "mlm_context_free_accuracy"),
             ("unigram token at [MASK] inputs", "mlm_masked_unigram_accuracy")) if key in baselines}},
        {"title": "SOP accuracy (held-out)",
         "series": ["eval/sop_accuracy", "eval/sop_same_document_accuracy", "eval/sop_random_document_accuracy"],
         "labels": ["all pairs", "same-document pairs (chance 50%)", "random-document pairs"],
         "baselines": {k: v for k, v in (("majority label, all", baselines.get("sop_majority_accuracy")),
                                         ("majority label, same-document",
                                          baselines.get("sop_same_document_majority_accuracy"))) if v is not None}},
    ]

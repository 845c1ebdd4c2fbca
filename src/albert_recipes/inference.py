"""Inference with a fine-tuned folder: load a model, merged or LoRA adapter folder as one classifier, run it in batches.

The seam for faster engines is small on purpose. A *backend* is any object with

    predict(features: list[dict[str, list[int]]]) -> list[np.ndarray]

taking tokenized, unpadded examples (`input_ids`, `attention_mask`, `token_type_ids`) and returning one logits
array per example: `(num_labels,)` for sequence tasks, `(len(input_ids), num_labels)` for token tasks.
`TorchBackend` pads each batch to its longest example and runs the PyTorch model. An ONNX Runtime backend, or an
unpadded (packed) PyTorch one, implements the same method, is built from the same `Classifier` (its `folder` may hold
a model.onnx, say) and is added to `BACKENDS` (the predict recipe's `model.backend` choices);
`batch_indices` is the one place that decides which examples share a batch (file order here; a length-grouped order
slots in beside it). `run` puts results back in file order by index, whatever the batching.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .errors import InputError
from .model_card import label_names, read_optional

logger = logging.getLogger(__name__)

TASK_SUFFIXES = {"ForSequenceClassification": "sequence_classification",
                 "ForTokenClassification": "token_classification"}  # fmt: skip
PEFT_TASK_TO_TASK = {"SEQ_CLS": "sequence_classification", "TOKEN_CLS": "token_classification"}


class Backend(Protocol):
    def predict(self, features: list[dict[str, list[int]]]) -> list[np.ndarray]: ...


@dataclass
class Classifier:
    """A loaded fine-tuned model with what a prediction needs to know about it."""

    model: Any  # a transformers model (an adapter is merged into its base for inference)
    tokenizer: Any
    task: str  # "sequence_classification" | "token_classification"
    label_names: list[str]  # id order; empty for regression
    regression: bool
    max_length: int  # what the run trained with, capped by the model's positions
    folder: Path
    source: str  # for logs: the folder, and the base an adapter was merged into


def _run_file(folder: Path, name: str) -> Any:
    """A run file of the folder, or of the fine-tuning output folder around it (adapter/, merged/, model/)."""
    for candidate in (folder, folder.parent):
        if (candidate / name).is_file():
            return read_optional(candidate, name)
    return None


def adapter_head_rows(adapter_weights: Path) -> int | None:
    """Number of labels of a classification adapter, read off the head it saved (peft's modules_to_save)."""
    from safetensors import safe_open

    with safe_open(adapter_weights, framework="pt") as f:
        for key in f.keys():
            if key.endswith(("classifier.weight", "qa_outputs.weight")):
                return f.get_slice(key).get_shape()[0]
    return None


def _label_kwargs(labels: list[str] | None, rows: int | None, regression: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if rows is not None:
        kwargs["num_labels"] = rows
    if regression:
        kwargs["problem_type"] = "regression"
    elif labels and (rows is None or len(labels) == rows):
        kwargs["id2label"] = dict(enumerate(labels))
        kwargs["label2id"] = {name: i for i, name in enumerate(labels)}
    return kwargs


def _load_adapter(folder: Path, adapter_config: dict, regression: bool):
    from peft import AutoPeftModelForSequenceClassification, AutoPeftModelForTokenClassification

    task_type = adapter_config.get("task_type")
    if task_type not in PEFT_TASK_TO_TASK:
        raise InputError(f"{folder} is a LoRA adapter for task_type {task_type!r}; predict handles "
                         f"{sorted(PEFT_TASK_TO_TASK)} (sequence and token classification)")
    base = adapter_config.get("base_model_name_or_path")
    if not base:
        raise InputError(f"{folder}/adapter_config.json names no base model (base_model_name_or_path)")
    if (base.startswith((".", "/")) or Path(base).is_absolute()) and not Path(base).is_dir():
        raise InputError(f"the adapter's base model {base} (from {folder}/adapter_config.json) does not exist; "
                         "restore that folder or set base_model_name_or_path to where the base now is")
    rows = adapter_head_rows(folder / "adapter_model.safetensors") if (folder / "adapter_model.safetensors").is_file() \
        else None
    auto = (AutoPeftModelForSequenceClassification if task_type == "SEQ_CLS" else AutoPeftModelForTokenClassification)
    # the base (often a pretrained model) does not know the task's labels: pass them, or the head would not fit
    model = auto.from_pretrained(folder, **_label_kwargs(label_names(folder), rows, regression))
    return model.merge_and_unload(), PEFT_TASK_TO_TASK[task_type], base


def load_classifier(path: str | Path) -> Classifier:
    """A fine-tuned sequence or token classifier from the fine-tuning recipe's `model/` or `merged/` folder, a LoRA
    `adapter/` folder (its base as adapter_config.json names it), or any such transformers model folder."""
    import albert_recipes  # noqa: F401  (registers the albert_recipes Auto classes)
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoModelForTokenClassification, \
        AutoTokenizer

    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"model folder not found: {folder}" if not folder.exists() else
                         f"{folder} is a file; model.path needs a model, merged or adapter folder")
    adapter_config = read_optional(folder, "adapter_config.json")
    recipe_config = _run_file(folder, "recipe_config.yaml") or {}
    regression = bool((recipe_config.get("data") or {}).get("regression"))
    if adapter_config is not None:
        model, task, base = _load_adapter(folder, adapter_config, regression)
        source = f"{folder} (LoRA adapter on {base}, merged for inference)"
    elif (folder / "config.json").is_file():
        config = AutoConfig.from_pretrained(folder)
        architecture = (config.architectures or ["?"])[0]
        suffix = next((s for s in TASK_SUFFIXES if architecture.endswith(s)), None)
        if suffix is None:
            raise InputError(f"{folder} holds a model of architecture {architecture}; predict needs a sequence or "
                             "token classification model: the fine-tuning recipe's model/, merged/ or adapter/ folder")
        task = TASK_SUFFIXES[suffix]
        auto = AutoModelForSequenceClassification if task == "sequence_classification" \
            else AutoModelForTokenClassification
        model = auto.from_pretrained(folder)
        regression = config.problem_type == "regression"
        source = str(folder)
    else:
        raise InputError(f"{folder} is neither a model folder (config.json) nor a LoRA adapter folder "
                         "(adapter_config.json); point model.path at the fine-tuning recipe's model/, merged/ or "
                         "adapter/ folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, TypeError) as err:
        raise InputError(f"{folder} has no tokenizer files (tokenizer.json, tokenizer_config.json): {err}") from err
    config = model.config
    names = [] if regression else [config.id2label[i] for i in range(config.num_labels)]
    trained = (recipe_config.get("data") or {}).get("max_length") or tokenizer.model_max_length
    max_length = int(min(trained, config.max_position_embeddings))
    return Classifier(model.eval(), tokenizer, task, names, regression, max_length, folder, source)


class TorchBackend:
    """PyTorch on batches padded to their longest example (the tokenizer's padding side and pad id)."""

    def __init__(self, classifier: Classifier, device: str | torch.device | None = None):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = classifier.model.to(self.device).eval()
        self.tokenizer = classifier.tokenizer
        self.token_level = classifier.task == "token_classification"

    @torch.no_grad()
    def logits(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """(B, C) or (B, T, C) scores of one padded batch (the step other engines replace)."""
        return self.model(**{k: v.to(self.device) for k, v in batch.items()}).logits.float().cpu().numpy()

    def predict(self, features: list[dict[str, list[int]]]) -> list[np.ndarray]:
        keys = ("input_ids", "attention_mask", "token_type_ids")
        batch = self.tokenizer.pad([{k: f[k] for k in keys if k in f} for f in features], return_tensors="pt")
        logits = self.logits(batch)
        if not self.token_level:
            return list(logits)  # (B, C) -> B x (C,)
        right = self.tokenizer.padding_side == "right"
        out = []
        for row, f in zip(logits, features):  # (T_max, C) -> (T_i, C): drop the padding positions
            n = len(f["input_ids"])
            out.append(row[:n] if right else row[len(row) - n:])
        return out


def _onnx_backend(classifier: Classifier, **kwargs) -> TorchBackend:
    from .onnx_export import OnnxBackend  # onnxruntime only when asked for

    return OnnxBackend(classifier, **kwargs)


BACKENDS = {"pytorch": TorchBackend, "onnx": _onnx_backend}


def batch_indices(count: int, batch_size: int, lengths: list[int] | None = None) -> list[list[int]]:
    """Which examples share a batch: consecutive slices in file order, or, given `lengths`, in length order (each
    batch then pads only to a length its rows nearly share: same predictions, far fewer padded tokens)."""
    if lengths is not None:
        from .length_grouped import length_grouped_batches

        return [rows.tolist() for rows in length_grouped_batches(lengths, batch_size)]
    return [list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)]


def encode(classifier: Classifier, texts: list, pairs: list[str] | None = None) -> list[dict[str, list[int]]]:
    """Tokenize without padding, truncated to the classifier's max_length. Token classification takes lists of words
    (or strings, split on whitespace) and keeps `word_ids` to map sub-tokens back to words."""
    tokenizer = classifier.tokenizer
    if classifier.task == "token_classification":
        words = [t.split() if isinstance(t, str) else list(t) for t in texts]
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=classifier.max_length)
        features = [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]
        for i, feature in enumerate(features):
            feature["word_ids"] = encoded.word_ids(i)
        return features
    encoded = tokenizer(list(texts), list(pairs) if pairs is not None else None, truncation=True,
                        max_length=classifier.max_length)
    return [dict(zip(encoded.keys(), values)) for values in zip(*encoded.values())]


def run(
    backend: Backend, features: list[dict], batch_size: int, progress=None, length_grouped: bool = False
) -> list[np.ndarray]:
    """Logits for every feature, in the features' order; `progress` (a tqdm bar) advances per example."""
    logits: list[np.ndarray | None] = [None] * len(features)
    lengths = [len(f["input_ids"]) for f in features] if length_grouped else None
    for indices in batch_indices(len(features), batch_size, lengths):
        for i, row in zip(indices, backend.predict([features[i] for i in indices])):
            logits[i] = row
        if progress is not None:
            progress.update(len(indices))
    return logits  # type: ignore[return-value]


__all__ = ["BACKENDS", "Backend", "Classifier", "TorchBackend", "batch_indices", "encode", "load_classifier", "run"]

"""Predict with a fine-tuned ALBERT: a model, merged or LoRA adapter folder and a file of texts in, label names and
scores out; with a label column, also the metrics beside the majority-class baseline and a confusion matrix.

    python recipes/predict.py --config recipes/configs/predict/debug.yaml
    python recipes/predict.py model.path=outputs/finetune/sst2/adapter data.file=../shared/data/sst2/dev.tsv \
        output_dir=outputs/predict/sst2-dev
    python recipes/predict.py model.path=outputs/finetune/debug/merged data.file=texts.txt output.formats=[jsonl,csv]

model.path is the fine-tuning recipe's `model/` (full fine-tune), `merged/` or `adapter/` folder (the adapter's base
is the one its adapter_config.json names; it is merged for inference). data.file is .txt (one text per non-blank
line), .csv, .tsv, .json or .jsonl with a text column (default `text` or `sentence`), an optional pair column and an
optional label column (default `label` when present). Sequence classification (labels or regression) and token
classification (words per example; tags as labels) are supported. Writes, all at once into `output_dir`:
`predictions.jsonl` and/or `predictions.csv` (text, predicted label, its probability, every class probability; or
the value for regression), and with labels `metrics.json` (the fine-tuning recipe's metric functions and
`baselines`) and `confusion_matrix.png`, plus `predict_config.yaml`. An existing output_dir is refused unless
output.overwrite=true.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from albert_recipes import finetune_data, inference, metrics
from albert_recipes.cli import ConfigError, config_to_yaml, run_cli
from albert_recipes.errors import InputError
from albert_recipes.io_utils import atomic_directory

logger = logging.getLogger("predict")

TEXT_COLUMNS = ("text", "sentence", "tokens")
LABEL_COLUMNS = ("label", "labels", "tags", "ner_tags")


@dataclass
class ModelSection:
    path: str = field(default="", metadata={"help": "the fine-tuning recipe's model/, merged/ or adapter/ folder "
                      "(any sequence or token classification model folder works)"})
    backend: Literal["pytorch", "onnx"] = field(default="pytorch", metadata={"help": "inference engine: PyTorch, or "
                                                "onnxruntime on an export of recipes/export_onnx.py (model.onnx_path)"})
    onnx_path: str = field(default="", metadata={"help": "with backend=onnx: the export folder (model.onnx); '': "
                           "model.path itself"})
    max_length: int = field(default=0, metadata={"help": "tokens per input, longer ones are truncated (0: the "
                            "training run's data.max_length, else the model's limit)"})


@dataclass
class DataSection:
    file: str = field(default="", metadata={"help": ".txt (one text per line), .csv, .tsv, .json or .jsonl"})
    text_column: str = field(default="", metadata={"help": "text column ('': the first of text, sentence, "
                             "tokens that exists); token classification: words as a list or a string"})
    text_pair_column: str = field(default="", metadata={"help": "second text column for sentence-pair models"})
    label_column: str = field(default="", metadata={"help": "gold labels, enabling metrics ('': the first of "
                              "label, labels, tags, ner_tags that exists, if any; a name given here must exist)"})
    max_samples: int = field(default=0, metadata={"help": "predict only the first N examples (0: all)"})


@dataclass
class RunSection:
    batch_size: int = field(default=32, metadata={"help": "examples per forward pass"})
    length_grouped: bool = field(default=True, metadata={"help": "batch examples of similar length (far less "
                                 "padding, same predictions); false: batches in file order"})
    torch_threads: int = field(default=0, metadata={"help": "CPU threads (0: torch's default)"})


@dataclass
class OutputSection:
    formats: list[Literal["jsonl", "csv"]] = field(default_factory=lambda: ["jsonl"],
                                                   metadata={"help": "prediction files to write"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output_dir"})


@dataclass
class PredictConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    run: RunSection = field(default_factory=RunSection)
    output: OutputSection = field(default_factory=OutputSection)
    output_dir: str = field(default="outputs/predict/debug", metadata={"help": "folder for every output"})

    def validate(self) -> None:
        if not self.model.path:
            raise ConfigError("model.path is required: the fine-tuning recipe's model/, merged/ or adapter/ folder")
        if not self.data.file:
            raise ConfigError("data.file is required: a .txt, .csv, .tsv, .json or .jsonl file of texts")
        if self.run.batch_size < 1:
            raise ConfigError(f"run.batch_size={self.run.batch_size} must be at least 1")
        for key, value in (("model.max_length", self.model.max_length), ("data.max_samples", self.data.max_samples),
                           ("run.torch_threads", self.run.torch_threads)):
            if value < 0:
                raise ConfigError(f"{key}={value} must be at least 0 (0: the default)")
        if not self.output.formats:
            raise ConfigError("output.formats is empty; choose jsonl, csv or both")


# ---------------------------------------------------------------- data


def _pick(columns: list[str], given: str, defaults: tuple[str, ...], what: str, setting: str, path: str) -> str | None:
    if given:
        if given not in columns:
            raise InputError(f"{path}: no {what} column {given!r}; the columns are {columns}; set {setting}")
        return given
    return next((name for name in defaults if name in columns), None)


def read_inputs(cfg: PredictConfig):
    """(dataset with canonical columns text[, text_pair][, label]) of the input file, checked before any model."""
    dataset = finetune_data.read_data_file(cfg.data.file, suffixes=(*finetune_data.FILE_SUFFIXES, ".txt"))
    columns = dataset.column_names
    text = _pick(columns, cfg.data.text_column, TEXT_COLUMNS, "text", "data.text_column", cfg.data.file)
    if text is None:
        raise InputError(f"{cfg.data.file}: no text column among {columns}; name it with data.text_column")
    pair = _pick(columns, cfg.data.text_pair_column, (), "pair", "data.text_pair_column", cfg.data.file)
    label = _pick(columns, cfg.data.label_column, LABEL_COLUMNS, "label", "data.label_column", cfg.data.file)
    dataset = finetune_data.require_columns(dataset, {"text": text, "text_pair": pair, "label": label},
                                            cfg.data.file)
    if cfg.data.max_samples:
        dataset = dataset.select(range(min(cfg.data.max_samples, len(dataset))))
    return dataset


def check_labels(dataset, classifier: inference.Classifier, where: str):
    """Gold labels as the model's ids (names or integers the model knows), or floats for regression; or None."""
    if "label" not in dataset.column_names:
        return None
    if classifier.regression:
        return finetune_data.encode_regression_labels(dataset, where)["label"]
    names, count = classifier.label_names, len(classifier.label_names)
    if classifier.task == "token_classification":  # words and tags as lists, or as space-separated strings
        words = [w.split() if isinstance(w, str) else list(w) for w in dataset["text"]]
        tags = [t.split() if isinstance(t, str) else list(t) for t in dataset["label"]]
        tagged = datasets.Dataset.from_dict({"tokens": words, "tags": tags})
        return finetune_data.encode_tag_sequences(tagged, names, where)["tags"]
    return finetune_data.encode_class_labels(dataset, names, count, where)["label"]


# ---------------------------------------------------------------- outputs


def sequence_rows(dataset, logits: list[np.ndarray], classifier: inference.Classifier, gold) -> list[dict]:
    """text (, text_pair) (, gold label), then the predicted label with its probability and every class's; or the
    predicted value for regression."""
    stacked, names = np.stack(logits), classifier.label_names  # (N, C)
    probabilities = None if classifier.regression else torch.softmax(torch.from_numpy(stacked), dim=-1).numpy()
    rows = []
    for i, example in enumerate(dataset):
        row = {"text": example["text"], **({"text_pair": example["text_pair"]} if "text_pair" in example else {})}
        if gold is not None:
            row["label"] = float(gold[i]) if classifier.regression else names[gold[i]]
        if probabilities is None:
            row["prediction"] = float(stacked[i, 0])
        else:
            best = int(probabilities[i].argmax())
            row.update(prediction=names[best], score=round(float(probabilities[i, best]), 6),
                       probabilities={name: round(float(p), 6) for name, p in zip(names, probabilities[i])})
        rows.append(row)
    return rows


def token_rows(dataset, features, logits, classifier: inference.Classifier, gold) -> list[dict]:
    """One tag per word, read at the word's first sub-token; words cut off by max_length get none."""
    names, rows = classifier.label_names, []
    for i, (example, feature, row_logits) in enumerate(zip(dataset, features, logits)):
        words = example["text"].split() if isinstance(example["text"], str) else list(example["text"])
        probabilities = torch.softmax(torch.from_numpy(row_logits), dim=-1).numpy()
        firsts, previous = [], None
        for position, word in enumerate(feature["word_ids"]):
            if word is not None and word != previous:
                firsts.append(position)
            previous = word
        best = probabilities[firsts].argmax(-1) if firsts else np.zeros(0, dtype=int)
        row = {"tokens": words, "predicted_tags": [names[b] for b in best],
               "scores": [round(float(probabilities[p, b]), 6) for p, b in zip(firsts, best)]}
        if gold is not None:
            row["tags"] = [names[t] for t in gold[i]]
        rows.append(row)
    return rows


def score_rows(rows: list[dict], classifier: inference.Classifier, gold) -> tuple[dict, dict, np.ndarray | None]:
    """(metrics, baselines, confusion matrix or None) with the fine-tuning recipe's metric functions."""
    names = classifier.label_names
    if classifier.task == "token_classification":
        predicted = [row["predicted_tags"] for row in rows]
        references = [row["tags"][: len(p)] for row, p in zip(rows, predicted)]  # truncated words: not scored
        ids = {name: i for i, name in enumerate(names)}
        flat_pred = [ids[t] for tags in predicted for t in tags]
        flat_gold = [ids[t] for tags in references for t in tags]
        return (metrics.entity_metrics(predicted, references), metrics.trivial_baselines(references, "tags"),
                metrics.confusion_matrix(flat_pred, flat_gold, len(names)))
    if classifier.regression:
        predictions = [row["prediction"] for row in rows]
        return (metrics.regression_metrics(predictions, list(gold)),
                metrics.trivial_baselines(list(gold), "regression"), None)
    predictions = [names.index(row["prediction"]) for row in rows]
    return (metrics.classification_metrics(predictions, list(gold), len(names)),
            metrics.trivial_baselines(list(gold), "classification", len(names)),
            metrics.confusion_matrix(predictions, list(gold), len(names)))


def to_csv(rows: list[dict]) -> str:
    """Flat CSV: lists joined with spaces, class probabilities as p_<label> columns."""
    flat = []
    for row in rows:
        out = {}
        for key, value in row.items():
            if isinstance(value, dict):
                out.update({f"p_{name}": p for name, p in value.items()})
            elif isinstance(value, list):
                out[key] = " ".join(str(v) for v in value)
            else:
                out[key] = value
        flat.append(out)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in flat for k in row)))
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


def main(cfg: PredictConfig) -> dict:
    # ---- parse -> setup: every check that can fail runs before anything is written
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config_yaml = config_to_yaml(cfg)
    print(config_yaml)
    output_dir = Path(cfg.output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())) and not cfg.output.overwrite:
        raise InputError(f"output_dir {output_dir} already exists; choose a new folder or set output.overwrite=true")
    if cfg.run.torch_threads:
        torch.set_num_threads(cfg.run.torch_threads)
    dataset = read_inputs(cfg)
    classifier = inference.load_classifier(cfg.model.path)
    if cfg.model.max_length:
        classifier.max_length = min(cfg.model.max_length, classifier.model.config.max_position_embeddings)
    if "text_pair" in dataset.column_names and classifier.task != "sequence_classification":
        raise InputError("data.text_pair_column is set, but token classification takes one text per example")
    gold = check_labels(dataset, classifier, cfg.data.file)
    logger.info("%d examples from %s; model %s (%s, labels %s)", len(dataset), cfg.data.file, classifier.source,
                classifier.task, classifier.label_names or "regression")

    # ---- predict
    pairs = list(dataset["text_pair"]) if "text_pair" in dataset.column_names else None
    features = inference.encode(classifier, dataset["text"], pairs)
    truncated = sum(len(f["input_ids"]) >= classifier.max_length for f in features)
    if truncated:
        logger.warning("%d of %d inputs reach max_length=%d tokens and may be truncated", truncated, len(features),
                       classifier.max_length)
    options = {"onnx_dir": cfg.model.onnx_path or None} if cfg.model.backend == "onnx" else {}
    backend = inference.BACKENDS[cfg.model.backend](classifier, **options)
    with tqdm(total=len(features), desc=f"predict ({cfg.model.backend})", unit="text") as progress:
        logits = inference.run(backend, features, cfg.run.batch_size, progress, length_grouped=cfg.run.length_grouped)

    # ---- score -> save
    if classifier.task == "token_classification":
        rows = token_rows(dataset, features, logits, classifier, gold)
    else:
        rows = sequence_rows(dataset, logits, classifier, gold)
    result = {"model": classifier.source, "file": cfg.data.file, "examples": len(rows), "task": classifier.task,
              "label_names": classifier.label_names, "truncated_inputs": truncated}
    matrix = None
    if gold is not None:
        scores, baselines, matrix = score_rows(rows, classifier, gold)
        result.update(metrics=scores, baselines=baselines)
        logger.info("metrics: %s", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        logger.info("baselines: %s", ", ".join(f"{k}={v:.4f}" for k, v in baselines.items()))
    with atomic_directory(output_dir) as tmp:
        if "jsonl" in cfg.output.formats:
            (tmp / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        if "csv" in cfg.output.formats:
            (tmp / "predictions.csv").write_text(to_csv(rows), encoding="utf-8")
        (tmp / "predict_config.yaml").write_text(config_yaml, encoding="utf-8")
        if gold is not None:
            (tmp / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        if matrix is not None:
            metrics.plot_confusion_matrix(matrix, classifier.label_names, tmp / "confusion_matrix.png")
    logger.info("wrote %s under %s", ", ".join(sorted(p.name for p in output_dir.iterdir())), output_dir)
    return {**result, "output_dir": str(output_dir)}


if __name__ == "__main__":
    run_cli(main, PredictConfig, __doc__)

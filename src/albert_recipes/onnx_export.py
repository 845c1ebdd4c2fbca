"""ONNX export of our models (every head), optional graph fusion and int8 dynamic quantization, checked against PyTorch.

The export uses `torch.onnx.export(..., dynamo=True)` with dynamic batch and sequence axes and the inputs
`input_ids`, `attention_mask`, `token_type_ids` (the legacy TorchScript exporter traces the model's data-dependent
mask shortcut as a constant and gives wrong results on padded batches). Optional steps, both from onnxruntime:

- graph fusion (`onnxruntime.transformers.optimizer`, BERT rules): EmbedLayerNormalization, SkipLayerNormalization
  and FastGelu kernels. The fused file needs onnxruntime (contrib ops); the plain export is standard ONNX.
- int8 dynamic quantization (`onnxruntime.quantization.quantize_dynamic`, int8 weights, per-tensor): every MatMul
  and, through the fused EmbedLayerNormalization / Gather nodes, the embedding tables, which hold most of ALBERT's
  weights. Fusion first matters: in the plain export the weights reach MatMul through Transpose nodes that the
  quantizer cannot see, and the embedding tables stay fp32 (see benchmarks/README.md for the measured choices).

Every export is verified at export time: the fp32 graph must match PyTorch within `atol` on real tokenized text
(two batch shapes, with padding); the int8 graph's agreement with PyTorch's predictions and its largest deviation are
measured and recorded in `onnx_export.json`.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import InputError
from .inference import TorchBackend
from .io_utils import atomic_directory

logger = logging.getLogger(__name__)

INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Architecture suffix -> the output fields exported, in order.
OUTPUTS = {
    "ForSequenceClassification": ("logits",),
    "ForTokenClassification": ("logits",),
    "ForMultipleChoice": ("logits",),
    "ForMaskedLM": ("logits",),
    "ForQuestionAnswering": ("start_logits", "end_logits"),
    "ForPreTraining": ("prediction_logits", "sop_logits"),
    "Model": ("last_hidden_state", "pooler_output"),
}
QUANTIZE_MODES = ("none", "int8")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model", "added_tokens.json",
)  # fmt: skip
SAMPLE_TEXTS = (
    "The film is a charming, funny and moving portrait of a family.",
    "Dull.",
    "An overlong, self-indulgent mess that never finds its footing, despite two fine lead performances and a "
    "score that does its best to lift every scene it plays under.",
    "It works.",
    "Not the best of the series, but the cast clearly enjoys itself and so will most of the audience.",
)


def output_names(architecture: str) -> tuple[str, ...]:
    for suffix, names in OUTPUTS.items():
        if architecture.endswith(suffix):
            return names
    raise InputError(f"cannot export architecture {architecture!r}; supported heads end in {sorted(OUTPUTS)}")


def load_model_folder(folder: str | Path):
    """(model in eval mode, tokenizer or None) from a saved model folder (a full fine-tune's or a merged LoRA's)."""
    import transformers

    import albert_recipes

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"model folder not found: {folder}")
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        raise InputError(
            f"{folder} is a LoRA adapter; export the merged model instead (the fine-tuning recipe's merged/ folder, "
            "or recipes/push_to_hub.py with export.merge_adapter=true)"
        )
    if not (folder / "config.json").is_file():
        raise InputError(f"{folder} is not a model folder: it has no config.json")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{folder / 'config.json'} is not valid JSON: {err}") from None
    if not list(folder.glob("*.safetensors")):
        raise InputError(f"{folder} has no *.safetensors weights; only safetensors checkpoints are loaded")
    architecture = (config.get("architectures") or ["AlbertRecipesModel"])[0]
    output_names(architecture)
    cls = getattr(albert_recipes, architecture, None) or getattr(transformers, architecture, None)
    if cls is None:
        raise InputError(f"unknown architecture {architecture!r} in {folder / 'config.json'}")
    model = cls.from_pretrained(folder, attn_implementation="sdpa").eval()
    tokenizer = None
    if any((folder / name).is_file() for name in TOKENIZER_FILES):
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


class _Exportable(torch.nn.Module):
    """The model with positional inputs and a tuple of named outputs, what the ONNX exporter traces."""

    def __init__(self, model: torch.nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return tuple(out[name] for name in self.names)


def sample_batches(model, tokenizer, num_choices: int | None = None) -> list[dict[str, np.ndarray]]:
    """Two padded batches of different shapes: tokenized sample text when there is a tokenizer, else random ids."""
    config = model.config
    batches = []
    for texts in (SAMPLE_TEXTS[:2], SAMPLE_TEXTS[2:]):
        if tokenizer is not None:
            enc = tokenizer(list(texts), padding=True, truncation=True, max_length=64, return_tensors="np")
            batch = {name: enc[name].astype(np.int64) for name in INPUT_NAMES if name in enc}
        else:
            rng = np.random.default_rng(len(texts))
            length = 9 + 7 * len(texts)
            batch = {"input_ids": rng.integers(5, config.vocab_size, (len(texts), length))}
            batch["attention_mask"] = np.ones_like(batch["input_ids"])
            batch["attention_mask"][0, length // 2 :] = 0
        batch.setdefault("token_type_ids", np.zeros_like(batch["input_ids"]))
        if num_choices:  # (B, T) -> (B, C, T): each choice a rolled copy
            batch = {k: np.stack([np.roll(v, c, axis=-1) if k == "input_ids" else v for c in range(num_choices)], 1)
                     for k, v in batch.items()}  # fmt: skip
        batches.append(batch)
    return batches


def export_fp32(model, path: Path, opset: int = 18) -> tuple[str, ...]:
    """Write the fp32 ONNX graph of `model` to `path` (dynamic batch/sequence axes); returns the output names."""
    names = output_names(type(model).__name__)
    multiple_choice = type(model).__name__.endswith("ForMultipleChoice")
    shape = (2, 2, 16) if multiple_choice else (2, 16)
    dummy = tuple(torch.ones(shape, dtype=torch.long) for _ in INPUT_NAMES)
    batch = torch.export.Dim("batch")
    sequence = torch.export.Dim("sequence", max=model.config.max_position_embeddings)
    axes = {0: batch, 1: torch.export.Dim("choices"), 2: sequence} if multiple_choice else {0: batch, 1: sequence}
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            _Exportable(model, names), dummy, str(path), input_names=list(INPUT_NAMES), output_names=list(names),
            dynamic_shapes={name: axes for name in INPUT_NAMES}, dynamo=True, opset_version=opset,
            external_data=False, verbose=False,
        )  # fmt: skip
    return names


def fuse(source: Path, target: Path, config) -> dict[str, int]:
    """onnxruntime's BERT fusions (EmbedLayerNormalization, SkipLayerNormalization, FastGelu); returns their counts."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(source), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
    )
    optimized.save_model_to_file(str(target))
    return {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}


QUANTIZED_OPS = ("MatMul", "Gather", "EmbedLayerNormalization", "Attention")


def quantize_int8(source: Path, target: Path, op_types: tuple[str, ...] = QUANTIZED_OPS, per_channel: bool = False) -> None:
    """Dynamic int8 quantization of the weights of every MatMul and (Gather, EmbedLayerNormalization) of the
    embedding tables: int8 weights, activations quantized on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=list(op_types),
                     per_channel=per_channel)  # fmt: skip


def session(path: str | Path, threads: int = 0):
    """An onnxruntime CPU session with all graph optimizations (threads=0: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def compare(path: Path, model, batches: list[dict[str, np.ndarray]], names: tuple[str, ...]) -> dict[str, Any]:
    """Largest absolute difference to PyTorch per output, and the agreement of the predicted classes."""
    sess = session(path)
    feed_names = {i.name for i in sess.get_inputs()}
    max_diff = {name: 0.0 for name in names}
    agree, total = 0, 0
    for batch in batches:
        reference = model(**{k: torch.from_numpy(v) for k, v in batch.items()})
        got = sess.run(list(names), {k: v for k, v in batch.items() if k in feed_names})
        mask = batch["attention_mask"].astype(bool)
        for name, value in zip(names, got):
            ref = reference[name].numpy()
            if ref.shape[:2] == mask.shape and ref.ndim >= 2 and name != "pooler_output":  # per token: real tokens only
                ref, value = ref[mask], value[mask]
            max_diff[name] = max(max_diff[name], float(np.abs(ref - value).max()))
            if ref.shape[-1] > 1 and name not in ("last_hidden_state", "pooler_output"):
                agree += int((ref.argmax(-1) == value.argmax(-1)).sum())
                total += int(np.prod(ref.shape[:-1]))
    return {"max_abs_diff": max_diff, "prediction_agreement": agree / total if total else None}


@dataclass
class ExportResult:
    output_dir: Path
    report: dict[str, Any]


def export_model(
    model_dir: str | Path,
    output_dir: str | Path,
    *,
    quantize: str = "none",
    optimize: bool = True,
    opset: int = 18,
    atol: float = 1e-4,
    overwrite: bool = False,
) -> ExportResult:
    """Export `model_dir` to `output_dir/model.onnx` (+ config.json, tokenizer, onnx_export.json), atomically.

    quantize: "none" (fp32) or "int8". optimize: apply onnxruntime's graph fusions (needed for a small int8 file).
    Raises InputError for a folder that is not a model, an unknown mode or a used output folder, and RuntimeError
    when the fp32 graph does not match PyTorch within `atol`.
    """
    if quantize not in QUANTIZE_MODES:
        raise InputError(f"quantize={quantize!r} is not supported; choose one of {list(QUANTIZE_MODES)}")
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    if output_dir.exists() and (not output_dir.is_dir() or any(output_dir.iterdir())) and not overwrite:
        raise InputError(f"output folder {output_dir} exists and is not empty; choose another or set overwrite")
    if output_dir.resolve() == model_dir.resolve():
        raise InputError(f"output folder {output_dir} is the model folder; choose another one")
    model, tokenizer = load_model_folder(model_dir)
    architecture = type(model).__name__
    num_choices = 2 if architecture.endswith("ForMultipleChoice") else None
    batches = sample_batches(model, tokenizer, num_choices)

    report: dict[str, Any] = {"source": str(model_dir), "architecture": architecture, "quantize": quantize,
                              "optimize": optimize, "opset": opset, "inputs": list(INPUT_NAMES)}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="onnx-export-") as work:
        work = Path(work)
        names = export_fp32(model, work / "plain.onnx", opset)
        report["outputs"] = list(names)
        graph = work / "plain.onnx"
        checks = {"fp32": compare(graph, model, batches, names)}
        if optimize:
            report["fused_operators"] = fuse(graph, work / "fused.onnx", model.config)
            graph = work / "fused.onnx"
            checks["fp32_fused"] = compare(graph, model, batches, names)
        for label, check in checks.items():
            worst = max(check["max_abs_diff"].values())
            if worst > atol:
                raise RuntimeError(f"the {label} ONNX graph differs from PyTorch by {worst:.3g} > atol={atol}")
        report["fp32_size_bytes"] = graph.stat().st_size
        if quantize == "int8":
            quantize_int8(graph, work / "int8.onnx")
            graph = work / "int8.onnx"
            checks["int8"] = compare(graph, model, batches, names)
            report["int8_size_bytes"] = graph.stat().st_size
            report["int8_size_ratio"] = report["int8_size_bytes"] / report["fp32_size_bytes"]
            if checks["int8"]["prediction_agreement"] not in (None, 1.0):
                logger.warning("int8 predictions agree with PyTorch on %.0f%% of the sample inputs",
                               100 * checks["int8"]["prediction_agreement"])
        report["verification"] = checks
        report["atol"] = atol
        with atomic_directory(output_dir) as tmp:
            shutil.copy2(graph, tmp / "model.onnx")
            model.config.to_json_file(tmp / "config.json")
            for name in TOKENIZER_FILES:
                if (model_dir / name).is_file():
                    shutil.copy2(model_dir / name, tmp / name)
            (tmp / "onnx_export.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return ExportResult(output_dir, report)


class OnnxModel:
    """An exported model on onnxruntime: `__call__(input_ids=..., attention_mask=..., ...)` -> dict of numpy arrays."""

    def __init__(self, folder: str | Path, threads: int = 0):
        folder = Path(folder)
        if not (folder / "model.onnx").is_file():
            raise InputError(f"{folder} has no model.onnx (export one with recipes/export_onnx.py)")
        self.folder = folder
        self.session = session(folder / "model.onnx", threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        feed = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None and name == "token_type_ids":
                value = np.zeros_like(np.asarray(inputs["input_ids"]))
            if value is None:
                raise InputError(f"the ONNX model needs the input {name!r}")
            feed[name] = np.asarray(value, dtype=np.int64)
        return dict(zip(self.output_names, self.session.run(self.output_names, feed)))


class OnnxBackend(TorchBackend):
    """The predict recipe's backend on onnxruntime: batches padded as the PyTorch backend pads them, scored by an
    export of recipes/export_onnx.py (`onnx_dir`, default: the classifier's own folder)."""

    def __init__(self, classifier, onnx_dir: str | Path | None = None, threads: int = 0):
        self.onnx = OnnxModel(onnx_dir or classifier.folder, threads)
        if "logits" not in self.onnx.output_names:
            raise InputError(f"{self.onnx.folder}/model.onnx has outputs {self.onnx.output_names}; predict needs logits")
        self.tokenizer = classifier.tokenizer
        self.token_level = classifier.task == "token_classification"

    def logits(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        return self.onnx(**{k: v.numpy() for k, v in batch.items()})["logits"]


__all__ = ["ExportResult", "OnnxBackend", "OnnxModel", "export_model", "load_model_folder", "output_names"]

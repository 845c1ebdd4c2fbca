"""Export a fine-tuned (or merged LoRA) model to ONNX, fp32 or int8, verified against PyTorch at export time.

    python recipes/export_onnx.py --model outputs/finetune/debug/merged --output outputs/onnx/debug
    python recipes/export_onnx.py --model outputs/finetune/sst2/merged --output outputs/onnx/sst2-int8 --quantize int8
    python recipes/export_onnx.py --config recipes/configs/export_onnx/debug.yaml

Writes OUTPUT/model.onnx (inputs input_ids, attention_mask, token_type_ids with dynamic batch and sequence axes;
outputs named as the model's: logits, start_logits/end_logits, ...), config.json, the tokenizer files and
onnx_export.json (sizes, fused operators, the measured differences to PyTorch). The folder appears complete or not at
all. Load it with `albert_recipes.onnx_export.OnnxModel(OUTPUT)` or plain `onnxruntime.InferenceSession`; with
`optimize=true` (default) it uses onnxruntime's contrib kernels, so it needs onnxruntime rather than any ONNX runtime.
optimum's ORTModelFor... classes cannot load it: optimum-onnx 0.1.0 (the latest) requires transformers < 4.58.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from albert_recipes.cli import ConfigError, config_to_yaml, run_cli


@dataclass
class ExportOnnxConfig:
    model: Path | None = field(
        default=None, metadata={"help": "saved model folder (config.json + safetensors): a fine-tune's model/ or merged/"}
    )
    output: Path | None = field(default=None, metadata={"help": "folder to write model.onnx and its files to"})
    quantize: Literal["none", "int8"] = field(
        default="none", metadata={"help": "int8: dynamic quantization of the weights and embedding tables"}
    )
    optimize: bool = field(
        default=True, metadata={"help": "onnxruntime graph fusions first (faster; needed for a small int8 file)"}
    )
    opset: int = field(default=18, metadata={"help": "ONNX opset"})
    atol: float = field(default=1e-4, metadata={"help": "largest allowed fp32 difference to PyTorch"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output folder"})

    def validate(self) -> None:
        if self.model is None or self.output is None:
            raise ConfigError("both model=DIR and output=DIR are required (or --model DIR --output DIR)")
        if self.opset < 18:
            raise ConfigError(f"opset={self.opset} is too old for the dynamo exporter; use 18 or newer")
        if self.atol <= 0:
            raise ConfigError(f"atol={self.atol} must be > 0")


def main(cfg: ExportOnnxConfig) -> dict:
    from albert_recipes.onnx_export import export_model

    print(config_to_yaml(cfg))
    result = export_model(cfg.model, cfg.output, quantize=cfg.quantize, optimize=cfg.optimize, opset=cfg.opset,
                          atol=cfg.atol, overwrite=cfg.overwrite)  # fmt: skip
    report = result.report
    for label, check in report["verification"].items():
        diffs = ", ".join(f"{k} {v:.2e}" for k, v in check["max_abs_diff"].items())
        agreement = check["prediction_agreement"]
        agree = "" if agreement is None else f", predictions agree {100 * agreement:.1f}%"
        print(f"{label:>10}: max |ONNX - PyTorch| {diffs}{agree}")
    size = report.get("int8_size_bytes", report["fp32_size_bytes"])
    ratio = f" ({100 * report['int8_size_ratio']:.0f}% of fp32)" if "int8_size_ratio" in report else ""
    print(f"wrote {result.output_dir / 'model.onnx'}: {size / 2**20:.1f} MiB{ratio}")
    return report


def _flags_to_overrides(argv: list[str]) -> list[str]:
    """`--model DIR --output DIR --quantize int8` (the familiar form) -> `model=DIR output=DIR quantize=int8`."""
    out, args = [], iter(argv)
    for arg in args:
        name = arg[2:]
        if arg.startswith("--") and name in ("model", "output", "quantize", "opset", "atol"):
            value = next(args, None)
            if value is None:
                sys.exit(f"error: {arg} needs a value")
            out.append(f"{name}={value}")
        elif arg == "--overwrite":
            out.append("overwrite=true")
        elif arg == "--no-optimize":
            out.append("optimize=false")
        else:
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.argv = [sys.argv[0], *_flags_to_overrides(sys.argv[1:])]
    run_cli(main, ExportOnnxConfig, __doc__)

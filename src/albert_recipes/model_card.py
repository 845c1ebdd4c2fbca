"""Model cards: the README.md (with Hub metadata) of every export, written from what the run really did.

A card says what the model is, how to install and load it (plain `transformers` with `trust_remote_code=True`, plus
`peft` for adapters: this package is not on PyPI and is not needed), a `pipeline()` example with the model's own
label names, the data it was trained and evaluated on (read from the recipe's merged config, not a fixed entry), the
measured figures beside their trivial baselines, and its limitations. `write_model_card` serves any model folder
(the pretraining export, `recipes/push_to_hub.py`); `write_finetune_card` the fine-tuning recipe's `adapter/`,
`merged/` and `model/` folders.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import InputError
from .io_utils import atomic_write_text

MODEL_TYPE = "albert_recipes"
# Architecture suffix -> (Auto class used in the usage snippet, pipeline tag on the Hub).
TASKS = {
    "ForPreTraining": ("AutoModelForPreTraining", "fill-mask"),
    "ForMaskedLM": ("AutoModelForMaskedLM", "fill-mask"),
    "ForSequenceClassification": ("AutoModelForSequenceClassification", "text-classification"),
    "ForTokenClassification": ("AutoModelForTokenClassification", "token-classification"),
    "ForQuestionAnswering": ("AutoModelForQuestionAnswering", "question-answering"),
    "ForMultipleChoice": ("AutoModelForMultipleChoice", None),
    "Model": ("AutoModel", "feature-extraction"),
}
PEFT_TASKS = {  # peft's task_type -> architecture suffix of the base model it adapts
    "SEQ_CLS": "ForSequenceClassification",
    "TOKEN_CLS": "ForTokenClassification",
    "QUESTION_ANS": "ForQuestionAnswering",
    "FEATURE_EXTRACTION": "Model",
}
PEFT_TASK_OF = {suffix: task for task, suffix in PEFT_TASKS.items()}
FINETUNE_TASKS = {  # the fine-tuning recipe's data.task -> architecture suffix
    "sequence_classification": "ForSequenceClassification",
    "token_classification": "ForTokenClassification",
    "question_answering": "ForQuestionAnswering",
}
# Numbers a run records beside its metrics; they go in the card's table, not in its `metrics` metadata.
NOT_METRICS = re.compile(r"(global_)?steps?|epochs?|lr|learning_rate|.*(time|runtime|second|tokens|samples|examples).*")
HELD_OUT = re.compile(r"(eval|dev|test|valid|validation)[._/]")
EXAMPLE_INPUTS = {
    "text-classification": '"ALBERT shares one set of layer weights across its whole depth."',
    "token-classification": '"Anna Novak moved from Oslo to Lagos last year."',
    "question-answering": 'question="Where does Anna live?", context="Anna lives in Oslo. Boris lives in Lima."',
}
PIPELINE_NAMES = {"text-classification": "classifier", "token-classification": "tagger",
                  "question-answering": "answer", "fill-mask": "fill"}  # fmt: skip


# ---------------------------------------------------------------- reading a folder


def read_optional(folder: Path, name: str) -> Any:
    path = folder / name
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else yaml.safe_load(text)


def _named_labels(config: dict | None) -> list[str] | None:
    """id2label as a list, unless it is transformers' placeholder LABEL_0, LABEL_1, ..."""
    id2label = (config or {}).get("id2label") or {}
    names = [id2label[key] for key in sorted(id2label, key=int)]
    return None if not names or names == [f"LABEL_{i}" for i in range(len(names))] else names


def label_names(folder: str | Path) -> list[str] | None:
    """The class names of a model or adapter folder: its config's id2label; for an adapter (whose base may be a
    pretrained model without labels) the `label_names` of the run's metrics.json, else its local base's id2label."""
    folder = Path(folder)
    names = _named_labels(read_optional(folder, "config.json"))
    if names or (folder / "config.json").is_file():
        return names
    for run in (folder, folder.parent):
        if (run / "metrics.json").is_file() and (names := (read_optional(run, "metrics.json") or {}).get("label_names")):
            return list(names)
    base = (read_optional(folder, "adapter_config.json") or {}).get("base_model_name_or_path")
    return _named_labels(read_optional(Path(base), "config.json")) if base and Path(base).is_dir() else None


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix=f"{prefix}{key}."))
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            flat[f"{prefix}{key}"] = value
    return flat


def _metric_name(key: str) -> str | None:
    """'eval.accuracy' / 'eval/accuracy' / 'dev_f1' -> 'accuracy' / 'f1'; None for bookkeeping like steps."""
    name = re.split(r"[./]", key)[-1].lower()
    name = re.sub(r"^(eval|dev|test|valid|validation|train)_", "", name)
    return None if NOT_METRICS.fullmatch(name) else name


def _split_metrics(metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """(held-out scores, trivial baselines) of a metrics dict: baselines sit under `baselines` or have
    'baseline' in their name; the scores are the held-out ones when the dict has any, else every number."""
    flat = _flatten({k: v for k, v in metrics.items() if k not in ("baselines", "history")})
    baselines = _flatten(metrics.get("baselines") or {})
    baselines.update({k: v for k, v in flat.items() if "baseline" in k.lower()})
    numbers = {k: float(v) for k, v in flat.items() if not isinstance(v, str) and "baseline" not in k.lower()}
    return {k: v for k, v in numbers.items() if HELD_OUT.match(k)} or numbers, baselines


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- sections


def _install_section(adapter_base: str | None) -> str:
    packages = 'torch "transformers>=5.0,<6"' + (' "peft>=0.15"' if adapter_base is not None else "")
    where = (f"the base model the adapter names in `adapter_config.json` (`{adapter_base}`)"
             if adapter_base is not None else "this repository")
    return (
        f"## Install\n\n```bash\npip install {packages}\n```\n\n"
        f"The model's code ships with {where}: `configuration_albert_recipes.py` and `modeling_albert_recipes.py`, "
        "two self-contained files that need only `torch` and `transformers`. `trust_remote_code=True` runs them, so "
        "read them first. The `albert_recipes` package that trained this model is not on PyPI and is not needed to "
        "use it."
    )


def _usage_section(repo_id: str, tag: str | None, *, labels: list[str] | None, adapter_task: str | None = None,
                   regression: bool = False, pairs: bool = False, mask_token: str = "[MASK]",
                   auto: str = "AutoModel", num_labels: int | None = None) -> str:
    """A `pipeline()` example that runs as written (the tests execute it), with the model's label names."""
    if tag not in PIPELINE_NAMES and not adapter_task:
        return ("## Usage\n\n```python\n"
                f"from transformers import AutoTokenizer, {auto}\n\n"
                f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")\n'
                f'model = {auto}.from_pretrained("{repo_id}", trust_remote_code=True)\n'
                'outputs = model(**tokenizer("ALBERT shares parameters across layers.", return_tensors="pt"))\n'
                "```")
    var = PIPELINE_NAMES[tag]
    if adapter_task:
        peft_auto = "AutoPeftModel" + PEFT_TASKS[adapter_task]
        head = ""
        if labels:  # an adapter's base (e.g. a pretrained model) may not know the task's labels: pass them
            head = (f"num_labels={len(labels)}, id2label={dict(enumerate(labels))!r}, "
                    f"label2id={ {name: i for i, name in enumerate(labels)}!r}, ")
        elif num_labels:  # at least the head's size, or a 2-class default would not fit it
            head = f"num_labels={num_labels}, "
        if regression:
            head = 'num_labels=1, problem_type="regression", '
        lines = [f"from peft import {peft_auto}", "from transformers import AutoTokenizer, pipeline", "",
                 f'model = {peft_auto}.from_pretrained("{repo_id}", {head}trust_remote_code=True)',
                 f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
                 f'{var} = pipeline("{tag}", model=model, tokenizer=tokenizer)']
    else:
        lines = ["from transformers import pipeline", "",
                 f'{var} = pipeline("{tag}", model="{repo_id}", trust_remote_code=True)']
    if tag == "fill-mask":
        call = f'"Python is a {mask_token} language."'
    elif tag == "text-classification" and pairs:
        call = '{"text": "A man is playing a guitar.", "text_pair": "Someone is making music."}'
    else:
        call = EXAMPLE_INPUTS[tag]
    lines.append(f"print({var}({call}))")
    if tag == "text-classification":
        lines.append("# -> [{'label': <label>, 'score': <predicted value>}]" if regression
                     else f"# -> [{{'label': <one of {labels}>, 'score': <its probability>}}]" if labels
                     else "# -> [{'label': ..., 'score': <its probability>}]")
    return "## Usage\n\n```python\n" + "\n".join(lines) + "\n```"


def _files(value: Any) -> list[str]:
    return [value] if isinstance(value, str) and value else [v for v in value or [] if v]


def _count(n: Any, what: str) -> str:
    return f"{n:,} {what}" if isinstance(n, int) else what


def _data_section(config: dict, result: dict) -> tuple[str, list[str]]:
    """(markdown, Hub dataset ids) describing the data the recipe config says the run used."""
    data = config.get("data") or {}
    hub_ids = [data["dataset_name"]] if data.get("dataset_name") else []
    lines = []
    if "finetune" in config:  # the fine-tuning recipe
        train_n, eval_n = (result.get("train") or {}).get("examples"), result.get("eval_examples")
        if data.get("synthetic_examples"):
            lines.append(f"- **Generated toy data, not real text**: {_count(train_n, 'training')} and "
                         f"{_count(eval_n, 'evaluation')} examples from `albert_recipes.finetune_data."
                         "synthetic_examples` (a smoke test of the recipe).")
        elif data.get("train_file"):
            lines.append(f"- Training: `{data['train_file']}` ({_count(train_n, 'examples')}).")
            lines.append(f"- Evaluation: `{data.get('validation_file')}` ({_count(eval_n, 'examples')}).")
        elif data.get("dataset_name"):
            name = data["dataset_name"] + (f" ({data['dataset_config']})" if data.get("dataset_config") else "")
            lines.append(f"- Training: `{name}`, split `{data.get('train_split')}` ({_count(train_n, 'examples')}).")
            lines.append(f"- Evaluation: `{name}`, split `{data.get('validation_split')}` "
                         f"({_count(eval_n, 'examples')}).")
        if data.get("max_train_samples"):
            lines.append(f"- Only the first {data['max_train_samples']:,} training examples were used.")
        columns = [f"`{data[k]}`" for k in ("text_column", "text_pair_column", "label_column")
                   if data.get("task", "sequence_classification") == "sequence_classification" and data.get(k)
                   and not data.get("synthetic_examples")]
        if columns:
            lines.append(f"- Columns read: {', '.join(columns)}.")
        if result.get("label_names"):
            lines.append(f"- Labels: {', '.join(f'`{n}`' for n in result['label_names'])}.")
        if data.get("max_length"):
            lines.append(f"- Inputs were cut to {data['max_length']} tokens.")
        lines.append("- Every figure under *Evaluation* is measured on the evaluation data above, after training.")
    else:  # pretraining
        files = _files(data.get("train_file"))
        if files:
            lines.append("- Text: " + ", ".join(f"`{f}`" for f in files) + ".")
        elif data.get("dataset_name"):
            split = f", split `{data.get('dataset_split')}`" if data.get("dataset_split") else ""
            config_name = f" (`{data['dataset_config']}`)" if data.get("dataset_config") else ""
            lines.append(f"- Text: the Hub dataset `{data['dataset_name']}`{config_name}{split}.")
        elif data:
            lines.append("- Text: the corpus embedded in `albert_recipes`, the prose of Python's own reference "
                         "documentation (it ships with every Python installation).")
        if data.get("eval_fraction"):
            lines.append(f"- {data['eval_fraction']:.0%} of the documents were held out for evaluation.")
        if data.get("tokenizer"):
            lines.append(f"- Tokenizer: `{data['tokenizer']}`.")
        elif data.get("vocab_size"):
            lines.append(f"- Tokenizer: a {data['vocab_size']:,}-piece Unigram vocabulary trained on the same text.")
        if data.get("max_seq_length"):
            lines.append(f"- Sequences of {data['max_seq_length']} tokens, `{data.get('masking', 'ngram')}` masking.")
    if not lines:
        return "", hub_ids
    return "## Training data\n\n" + "\n".join(lines), hub_ids


def _baseline_for(metric: str, baselines: dict[str, Any]) -> list[str]:
    return [f"{_format(v)} ({k})" for k, v in baselines.items()
            if not isinstance(v, str) and (k.split(".")[-1] == metric or k.endswith(f"_{metric}"))]


def _evaluation_section(scores: dict[str, float], baselines: dict[str, Any]) -> str:
    if not scores:
        return ""
    used: set[str] = set()
    rows = []
    for key, value in scores.items():
        matched = _baseline_for(_metric_name(key) or key, baselines)
        used.update(m.rsplit(" (", 1)[1][:-1] for m in matched)
        rows.append(f"| {key} | {value:.4g} | {'; '.join(matched) or '-'} |")
    text = "## Evaluation\n\n| metric | value | trivial baseline |\n| --- | --- | --- |\n" + "\n".join(rows)
    rest = {k: v for k, v in baselines.items() if k not in used}
    if rest:
        text += ("\n\nTrivial baselines, for scale (what a model that learnt nothing would score):\n\n"
                 "| baseline | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {_format(v)} |" for k, v in rest.items()))
    return text


def _interval(p: float, n: int) -> float:
    """Half-width of a 95% normal-approximation interval of a proportion p measured on n examples."""
    return 1.96 * math.sqrt(max(p * (1 - p), 0.0) / n)


def _training_section(result: dict, config: dict) -> str:
    lora, train = config.get("lora") or {}, config.get("train") or {}
    # the evaluations (entries with an epoch; the training-loss log entries have none), "eval/" keys shortened
    history = [{k.removeprefix("eval/"): v for k, v in h.items()} for h in result.get("history") or [] if "epoch" in h]
    params = result.get("parameters") or {}
    mode = result.get("mode") or (config.get("finetune") or {}).get("mode")
    lines = [f"- Mode: {mode}" + (f" (LoRA rank {lora.get('r')}, alpha {lora.get('alpha')})" if mode == "lora" else "")
             + "."]
    if params.get("total"):
        lines.append(f"- Trainable parameters: {params['trainable']:,} of {params['total']:,}.")
    if steps := (result.get("train") or {}).get("steps"):
        rate = train.get("learning_rate", train.get("lr"))  # `lr` in configs written before the rename
        lines.append(f"- {steps:,} optimizer steps over {train.get('epochs') or len(history)} epoch(s), batch "
                     f"{train.get('batch_size')}, peak learning rate {rate}.")
    if len(history) > 1:  # the held-out scores after every evaluation
        keys = [k for k, v in history[-1].items() if k not in ("epoch", "step") and isinstance(v, (int, float))]
        rows = [f"| {h.get('epoch')} | {h.get('step')} | " + " | ".join(_format(float(h[k])) if k in h else "-"
                                                                       for k in keys) + " |" for h in history]
        lines.append("\n| epoch | step | " + " | ".join(keys) + " |\n| --- | --- | " + " | ".join("---" for _ in keys)
                     + " |\n" + "\n".join(rows))
    return "## Training\n\n" + "\n".join(lines)


def _finetune_limitations(config: dict, result: dict, kind: str) -> list[str]:
    model, data = config.get("model") or {}, config.get("data") or {}
    scores, n = result.get("eval") or {}, result.get("eval_examples")
    notes = []
    if not model.get("name_or_path"):
        notes.append(f"**Not pretrained.** The encoder started from random weights (preset `{model.get('preset')}`), "
                     "so all it knows comes from the fine-tuning data; it will not generalise like a pretrained model.")
    if data.get("synthetic_examples"):
        notes.append("**Toy data.** It was trained on generated sentences to test the recipe; do not use it on real "
                     "text.")
    if isinstance(n, int) and n > 0 and isinstance(scores.get("accuracy"), (int, float)):
        p = float(scores["accuracy"])
        notes.append(f"The evaluation set has {n:,} examples, so the accuracy of {p:.3f} is known to about "
                     f"±{_interval(p, n):.3f} (95% interval).")
    if data.get("max_length"):
        notes.append(f"Inputs longer than {data['max_length']} tokens are truncated.")
    if kind in ("adapter", "merged"):
        notes.append("ALBERT applies one set of layer weights at every depth, so the LoRA update is shared by "
                     "every layer as well.")
    notes.append("It was trained and evaluated on one dataset: expect lower scores on text from other sources, and "
                 "check it for biases inherited from its data before any real use.")
    return notes


def _pretrain_limitations(config: dict, run: dict) -> list[str]:
    train, data = config.get("train") or {}, config.get("data") or {}
    notes = []
    steps = run.get("steps") or train.get("max_steps")
    if steps:
        notes.append(f"A small pretraining run: {steps:,} steps at a batch of {train.get('batch_size')} sequences of "
                     f"{data.get('max_seq_length')} tokens (the paper: 125,000 steps at 4,096 x 512). Use it as a "
                     "starting point for fine-tuning, not as a general-purpose language model.")
    notes.append("Its vocabulary and knowledge come only from the training text above; compare its scores with the "
                 "trivial baselines before relying on it.")
    return notes


def _render(folder: Path, *, metadata: dict[str, Any], title: str, sections: list[str]) -> Path:
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(**{k: v for k, v in metadata.items() if v not in (None, [], ())})
    body = "\n\n".join(s for s in [title, *sections] if s)
    plots = sorted(p.name for p in folder.glob("*.png"))
    if plots:
        body += "\n\n## Plots\n\n" + "\n\n".join(f"![{Path(name).stem}]({name})" for name in plots)
    path = folder / "README.md"
    atomic_write_text(path, str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")))
    return path


def _config_section(training_config: dict | None) -> str:
    if not training_config:
        return ""
    dumped = yaml.safe_dump(training_config, sort_keys=False).strip()
    return f"## Training configuration\n\n```yaml\n{dumped}\n```"


def _tags(is_adapter: bool, tags: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(["albert", MODEL_TYPE, "custom_code", *(["lora"] if is_adapter else []), *tags]))


def _hub_id(name: str | None) -> str | None:
    return name if name and not Path(name).exists() else None  # a local folder is no Hub id


def _head_rows(folder: Path) -> int | None:
    from .inference import adapter_head_rows  # inference imports this module

    weights = folder / "adapter_model.safetensors"
    return adapter_head_rows(weights) if weights.is_file() else None


def _default_name(folder: Path) -> str:
    """'sst2-adapter' for a recipe's outputs/finetune/sst2/adapter, else the folder's own name."""
    generic = ("adapter", "merged", "model", "final", "base")
    return f"{folder.parent.name}-{folder.name}" if folder.name in generic and folder.parent.name else folder.name


def _mask_token(folder: Path) -> str:
    token = (read_optional(folder, "tokenizer_config.json") or {}).get("mask_token") or "[MASK]"
    return token["content"] if isinstance(token, dict) else token


# ---------------------------------------------------------------- entry points


def write_model_card(
    folder: str | Path,
    *,
    base_model: str | None = None,
    datasets: Sequence[str] = (),
    metrics: dict | None = None,
    training_config: dict | None = None,
    pipeline_tag: str | None = None,
    tags: Sequence[str] = (),
    license: str = "apache-2.0",
    repo_id: str | None = None,
) -> Path:
    """Write `folder/README.md`: Hub metadata, install and usage, training data, evaluation beside the trivial
    baselines, limitations and the training config.

    `metrics`/`training_config` default to the folder's `metrics.json`/`recipe_config.yaml` (baselines are read
    from the folder's metrics.json when `metrics` lacks them); a fine-tuning run's folder gets
    `write_finetune_card`'s card. `pipeline_tag` defaults to the architecture's; `repo_id` fills the snippets.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"model folder not found: {folder}")
    run = read_optional(folder, "metrics.json") or {}
    metrics = metrics if metrics is not None else run
    training_config = training_config if training_config is not None else read_optional(folder, "recipe_config.yaml")
    result = run if "task" in run else metrics
    if training_config and "finetune" in training_config and "task" in result:  # a fine-tuning run's export
        adapter = (folder / "adapter_config.json").is_file()
        kind = "adapter" if adapter else "model" if training_config["finetune"].get("mode") == "full" else "merged"
        return write_finetune_card(folder, kind=kind, result=result, recipe_config=training_config, repo_id=repo_id,
                                   base_model=base_model, datasets=datasets, tags=tags, license=license)
    scores, baselines = _split_metrics({"baselines": run.get("baselines"), **metrics})
    adapter_config = read_optional(folder, "adapter_config.json")
    architecture = ((read_optional(folder, "config.json") or {}).get("architectures") or ["AlbertRecipesModel"])[0]
    suffix = PEFT_TASKS.get((adapter_config or {}).get("task_type") or "", "Model") if adapter_config else next(
        (s for s in TASKS if architecture.endswith(s)), "Model")
    auto, default_tag = TASKS[suffix]
    repo_id = repo_id or f"your-namespace/{_default_name(folder)}"
    data_text, hub_ids = _data_section(training_config or {}, run)
    adapter_task = (adapter_config or {}).get("task_type")
    adapter_task = adapter_task if adapter_task in PEFT_TASK_OF.values() and adapter_task != "FEATURE_EXTRACTION" \
        else None
    what = "A LoRA adapter for an ALBERT" if adapter_config else "An ALBERT"
    title = (f"# {repo_id.split('/')[-1]}\n\n{what} model (Lan et al., 2019, *ALBERT: A Lite BERT for Self-supervised "
             "Learning of Language Representations*) trained with the `albert_recipes` recipes"
             + (f", starting from {_link(base_model)}." if base_model else "."))
    adapter_base = (adapter_config.get("base_model_name_or_path") or "<base model>") if adapter_config else None
    sections = [
        _install_section(adapter_base),
        _usage_section(repo_id, pipeline_tag or default_tag, labels=label_names(folder),
                       adapter_task=adapter_task, mask_token=_mask_token(folder), auto=auto,
                       num_labels=_head_rows(folder)),
        data_text,
        _evaluation_section(scores, baselines),
        "## Limitations\n\n" + "\n".join(f"- {n}" for n in _pretrain_limitations(training_config or {}, run))
        if training_config and "finetune" not in training_config else "",
        _config_section(training_config),
    ]
    metadata = dict(
        library_name="peft" if adapter_config else "transformers", pipeline_tag=pipeline_tag or default_tag,
        tags=_tags(bool(adapter_config), tags), datasets=list(dict.fromkeys([*datasets, *hub_ids])),
        metrics=[name for name in dict.fromkeys(map(_metric_name, scores)) if name], base_model=_hub_id(base_model),
        license=license,
    )  # fmt: skip
    return _render(folder, metadata=metadata, title=title, sections=sections)


def _link(repo_or_path: str) -> str:
    if Path(repo_or_path).exists():  # a local folder: no page to link to
        return f"`{repo_or_path}`"
    return f"[{repo_or_path}](https://huggingface.co/{repo_or_path})"


def write_finetune_card(
    folder: str | Path,
    *,
    kind: Literal["adapter", "merged", "model"],
    result: dict,
    recipe_config: dict,
    repo_id: str | None = None,
    base_model: str | None = None,
    datasets: Sequence[str] = (),
    tags: Sequence[str] = (),
    license: str = "apache-2.0",
) -> Path:
    """Write the model card of a fine-tuning run's export folder (after `save_pretrained`, replacing PEFT's).

    `kind`: "adapter" (a LoRA adapter), "merged" (the adapter merged into its base) or "model" (a full fine-tune);
    `result`: the dict the recipe writes to metrics.json (eval scores, baselines, counts, label names);
    `recipe_config`: the merged recipe config as a plain dict; `base_model`: a Hub id for the metadata and text.
    """
    folder = Path(folder)
    if kind not in ("adapter", "merged", "model"):
        raise InputError(f"kind={kind!r} is not a fine-tuning export; choose 'adapter', 'merged' or 'model'")
    if not folder.is_dir():
        raise InputError(f"model folder not found: {folder}")
    model_cfg, data = recipe_config.get("model") or {}, recipe_config.get("data") or {}
    task = result.get("task") or data.get("task") or "sequence_classification"
    regression = bool(data.get("regression"))
    suffix = FINETUNE_TASKS.get(task, "Model")
    tag = TASKS[suffix][1]
    labels = None if regression or task == "question_answering" else (result.get("label_names") or label_names(folder))
    repo_id = repo_id or f"your-namespace/{_default_name(folder)}"
    adapter_config = read_optional(folder, "adapter_config.json") or {}
    adapter_base = (adapter_config.get("base_model_name_or_path") or "<base model>") if kind == "adapter" else None
    base = base_model or model_cfg.get("name_or_path")
    start = (f"starting from {_link(base)}" if base else
             f"starting from **random weights** (preset `{model_cfg.get('preset')}`, no pretraining)")
    what = {"adapter": "A LoRA adapter (PEFT) for ALBERT", "merged": "ALBERT with a LoRA adapter merged into its "
            "weights", "model": "ALBERT, every weight fine-tuned"}[kind]
    task_words = task.replace("_", " ") + (" (regression)" if regression else "")
    title = (f"# {repo_id.split('/')[-1]}\n\n{what} for {task_words}, {start}, trained with the `albert_recipes` "
             "fine-tuning recipe. ALBERT: Lan et al., 2019, *ALBERT: A Lite BERT for Self-supervised Learning of "
             "Language Representations*.")
    data_text, hub_ids = _data_section(recipe_config, result)
    scores, baselines = _split_metrics({**(result.get("eval") or {}), "baselines": result.get("baselines")})
    sections = [
        _install_section(adapter_base),
        _usage_section(repo_id, tag, labels=labels, adapter_task=PEFT_TASK_OF[suffix] if kind == "adapter" else None,
                       regression=regression, pairs=bool(data.get("text_pair_column"))),
        data_text,
        _evaluation_section(scores, baselines),
        _training_section(result, recipe_config),
        "## Limitations\n\n" + "\n".join(f"- {n}" for n in _finetune_limitations(recipe_config, result, kind)),
        _config_section(recipe_config),
    ]
    metadata = dict(
        library_name="peft" if kind == "adapter" else "transformers", pipeline_tag=tag,
        tags=_tags(kind == "adapter", [*tags, "lora"] if kind == "merged" else tags),
        datasets=list(dict.fromkeys([*datasets, *hub_ids])),
        metrics=[name for name in dict.fromkeys(map(_metric_name, scores)) if name], base_model=_hub_id(base),
        license=license,
    )  # fmt: skip
    return _render(folder, metadata=metadata, title=title, sections=sections)


__all__ = ["label_names", "write_finetune_card", "write_model_card"]

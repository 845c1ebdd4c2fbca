"""Hub export and upload: a self-contained model folder, its model card, and a one-commit push.

`export_for_hub` turns a trained model folder (or a PEFT adapter, optionally merged into its base) into a folder
that loads anywhere with `trust_remote_code=True`; `write_model_card` / `write_finetune_card` (from
`albert_recipes.model_card`) write its README.md; `push_folder_to_hub` uploads exactly the files of a folder, after
refusing anything that looks like a secret or a training state, and says in one line when the Hub cannot be reached.
The token comes from `HF_TOKEN` or the `huggingface_hub` login and is never printed or written.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import re
import shutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError
from .inference import adapter_head_rows
from .io_utils import atomic_directory, atomic_write_text
from .model_card import MODEL_TYPE, PEFT_TASKS, label_names, write_finetune_card, write_model_card
from .model_card import read_optional as _read_optional

logger = logging.getLogger(__name__)

CODE_FILES = ("configuration_albert_recipes.py", "modeling_albert_recipes.py")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model", "tokenizer.model",
    "added_tokens.json", "chat_template.jinja",
)  # fmt: skip
RUN_FILES = ("recipe_config.yaml", "metrics.json")

# Names that betray optimizer/scheduler/RNG state or pickles (unsafe to load, useless to a model's users).
TRAINING_STATE_PATTERNS = (
    "optimizer*", "scheduler*", "scaler*.pt", "rng_state*", "random_states*", "training_args.bin",
    "*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.pickle",
)  # fmt: skip
SECRET_PATTERNS = (
    ".env", ".env.*", "*.env", ".netrc", ".git-credentials", "*.pem", "*.key", "id_rsa*", "id_ed25519*",
    "token", "stored_tokens", "*secret*", "*credential*",
)  # fmt: skip
# A Hugging Face user access token: "hf_" and 34 letters/digits (older ones are a little shorter).
TOKEN_LIKE = re.compile(rb"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}")
# Folders huggingface_hub itself never uploads (git metadata, its local upload cache).
SKIPPED_DIRS = (".git", ".cache")

# ---------------------------------------------------------------- checking what may leave the machine


def validate_repo_id(repo_id: str) -> None:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hub_validate

    try:
        hub_validate(repo_id)
    except HFValidationError as err:
        raise InputError(
            f"invalid repo id {repo_id!r}: use 'namespace/name' (or 'name'), at most 96 letters, digits, "
            f"'-', '_' or '.', without '--' or '..' ({err})"
        ) from None


def require_token() -> str:
    """The token huggingface_hub would use (HF_TOKEN, then the saved login); never printed or stored."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise InputError(
            "no Hugging Face token found: set the HF_TOKEN environment variable or run `hf auth login` "
            "(or use a dry run to see what would be uploaded)"
        )
    return token


def check_online() -> None:
    """Refuse early, before anything is exported, when huggingface_hub is told to stay offline."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise InputError("HF_HUB_OFFLINE is set, so nothing can be uploaded: unset it (or set HF_HUB_OFFLINE=0) to "
                         "push, or use a dry run to see what would be uploaded")


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection-level errors of the HTTP client huggingface_hub uses (httpx in 1.x, httpx2 in 2.x, requests
    before): only a client that is loaded can have raised one."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module_name, name in (("httpx", "TransportError"), ("httpx2", "TransportError"),
                              ("requests", "ConnectionError"), ("requests", "Timeout")):
        error = getattr(sys.modules.get(module_name), name, None)
        if isinstance(error, type) and issubclass(error, BaseException):
            errors.append(error)
    return tuple(errors)


@contextlib.contextmanager
def hub_errors(action: str) -> Iterator[None]:
    """Turn "the Hub cannot be reached" and "the Hub refused the token" into one clear line (`InputError`) naming
    the endpoint and what to check; any other error keeps its traceback."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        yield
    except OfflineModeIsEnabled as err:
        raise InputError(f"{action}: HF_HUB_OFFLINE is set; unset it to reach {constants.ENDPOINT}") from err
    except HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        if status not in (401, 403):
            raise
        detail = (getattr(err, "server_message", None) or str(err)).strip().splitlines()[0]
        raise InputError(
            f"{action}: the Hub at {constants.ENDPOINT} refused the token (HTTP {status}: {detail}); check HF_TOKEN "
            "or `hf auth login`, and that the token may write to that namespace"
        ) from err
    except _network_errors() as err:
        raise InputError(
            f"{action}: cannot reach the Hugging Face Hub at {constants.ENDPOINT} ({type(err).__name__}: {err}); "
            "check the network connection, proxy settings and HF_ENDPOINT. No commit was made"
        ) from err


def list_folder_files(folder: str | Path) -> list[Path]:
    """Relative paths of the regular files under `folder`, the way they would appear in the repo."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"folder to upload not found: {folder}")
    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if rel.parts[0] in SKIPPED_DIRS:
            continue
        if path.is_symlink():
            raise InputError(f"{path} is a symbolic link; only plain files of the folder are uploaded")
        if path.is_file():
            files.append(rel)
    return files


def _file_matches(path: Path, pattern: re.Pattern[bytes]) -> bool:
    """Scan in overlapping 8 MB windows so multi-GB weight files never sit in memory at once."""
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            window = tail + chunk
            if pattern.search(window):
                return True
            tail = window[-256:]
    return False


def check_files(folder: str | Path, allow: Sequence[str] = (), token: str | None = None) -> list[Path]:
    """Return the files of `folder`, or raise listing every one that looks like a secret or a training state.

    `allow` holds glob patterns (matched against the relative path and the file name) of files to upload
    anyway; `token`, when given, is refused wherever it appears, whatever `allow` says.
    """
    folder = Path(folder)
    files = list_folder_files(folder)
    live_token = re.compile(re.escape(token.encode())) if token else None
    problems = []
    for rel in files:
        allowed = any(fnmatch.fnmatch(rel.as_posix(), pat) or fnmatch.fnmatch(rel.name, pat) for pat in allow)
        name = rel.name.lower()
        if live_token and _file_matches(folder / rel, live_token):
            problems.append(f"{rel} (contains the Hugging Face token in use)")
        elif allowed:
            continue
        elif any(fnmatch.fnmatch(name, pat) for pat in SECRET_PATTERNS):
            problems.append(f"{rel} (looks like a secret)")
        elif any(fnmatch.fnmatch(name, pat) for pat in TRAINING_STATE_PATTERNS):
            problems.append(f"{rel} (looks like training state or a pickle; weights belong in .safetensors)")
        elif _file_matches(folder / rel, TOKEN_LIKE):
            problems.append(f"{rel} (contains a string that looks like a Hugging Face token)")
    if problems:
        raise InputError(
            f"refusing to upload {len(problems)} file(s) from {folder}: " + "; ".join(problems)
            + ". Remove them, or list the ones you really mean to publish in `allow` (hub.allow=[...])."
        )
    return files


def format_upload_plan(folder: str | Path, files: Iterable[Path]) -> str:
    folder = Path(folder)
    rows = [(rel.as_posix(), (folder / rel).stat().st_size) for rel in files]
    width = max((len(name) for name, _ in rows), default=4)
    lines = [f"  {name:<{width}}  {_human_size(size):>10}" for name, size in rows]
    total = sum(size for _, size in rows)
    return "\n".join([*lines, f"  {len(rows)} file(s), {_human_size(total)} in total"])


def _human_size(size: int) -> str:
    exponent = min(max(size.bit_length() - 1, 0) // 10, 3)  # exact powers of 1024, no float log
    unit = ("B", "KB", "MB", "GB")[exponent]
    return f"{size} B" if exponent == 0 else f"{size / 1024**exponent:.1f} {unit}"


# ---------------------------------------------------------------- upload


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = True,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    allow: Sequence[str] = (),
) -> str:
    """Upload every file of `folder` to `repo_id` (created if needed) as ONE commit; return the commit URL.

    A `revision` other than main is created as a branch (from main) when missing. Files that look like
    secrets or training state are refused unless matched by `allow`. With `dry_run`, print what would be
    uploaded (with sizes), send nothing and return the URL the files would go to.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    validate_repo_id(repo_id)
    folder = Path(folder)
    token = None if dry_run else require_token()
    files = check_files(folder, allow=allow, token=token)
    if not files:
        raise InputError(f"nothing to upload: {folder} has no files")
    target = f"{repo_id} ({'private' if private else 'public'}, revision {revision or 'main'})"
    if dry_run:
        print(f"[dry run] would upload to {target}:\n{format_upload_plan(folder, files)}")
        return f"{constants.ENDPOINT}/{repo_id}/tree/{revision or 'main'}"

    check_online()
    api = HfApi(token=token)
    with hub_errors(f"uploading {folder} to {repo_id}"):
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        # create_commit rather than upload_folder: with hf_xet installed upload_folder may split a folder into
        # several commits, and this way exactly the checked files are sent.
        operations = [CommitOperationAdd(path_in_repo=rel.as_posix(), path_or_fileobj=str(folder / rel))
                      for rel in files]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload {folder.name} with albert_recipes",
            revision=revision,
        )
    print(f"uploaded {len(files)} file(s) to {target}: {info.commit_url}")
    return info.commit_url


# ---------------------------------------------------------------- export


def _model_class(architecture: str):
    import transformers

    import albert_recipes

    cls = getattr(albert_recipes, architecture, None) or getattr(transformers, architecture, None)
    if cls is None:
        raise InputError(f"unknown architecture {architecture!r} in config.json")
    return cls


def _copy_tokenizer(source: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)


def _check_empty_target(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise InputError(f"export folder {output_dir} exists and is not a folder")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise InputError(f"export folder {output_dir} is not empty; choose a new folder or set overwrite")


def export_for_hub(
    source: str | Path,
    output_dir: str | Path,
    *,
    merge_adapter: bool = False,
    base_model: str | None = None,
    overwrite: bool = False,
    card: dict | None = None,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Export a model folder or a PEFT adapter folder to `output_dir`, ready for `push_folder_to_hub`.

    A model is re-saved (safetensors, config with `auto_map`, the two self-contained code files); an adapter
    is copied as is, or with `merge_adapter` merged into `base_model` (default: the adapter's own base) and
    saved as a plain model. The tokenizer, `recipe_config.yaml`, `metrics.json` and `*.png` plots (looked up
    in `source`, then in its parent if that is a recipe's output folder) come along; the model card gets `card`
    as extra `write_model_card` arguments; `extra_files` (name -> text) are written as given. The folder
    appears complete or not at all.
    """
    source, output_dir = Path(source), Path(output_dir)
    if not source.is_dir():
        raise InputError(f"model folder not found: {source}")
    is_adapter = (source / "adapter_config.json").is_file()
    if not is_adapter and not (source / "config.json").is_file():
        raise InputError(f"{source} is neither a model folder (config.json) nor a PEFT adapter (adapter_config.json)")
    if output_dir.resolve() == source.resolve() or output_dir.resolve() in source.resolve().parents:
        raise InputError(f"export folder {output_dir} would replace the model folder {source}; choose another one")
    _check_empty_target(output_dir, overwrite)

    card = dict(card or {})
    with atomic_directory(output_dir) as tmp:
        if is_adapter and merge_adapter:
            base_model = base_model or _read_optional(source, "adapter_config.json").get("base_model_name_or_path")
            _save_merged(source, base_model, tmp)
        elif is_adapter:
            _copy_adapter(source, tmp, base_model)
        else:
            _save_model(source, tmp)
        _copy_tokenizer(source, tmp)
        # a recipe's output folder (it holds recipe_config.yaml) keeps the run's files beside adapter/, merged/
        run_dirs = (source, source.parent) if (source.parent / "recipe_config.yaml").is_file() else (source,)
        for name in RUN_FILES:
            found = next((d / name for d in run_dirs if (d / name).is_file()), None)
            if found is not None:
                shutil.copy2(found, tmp / name)
        for plot in {p.name: p for d in reversed(run_dirs) for p in d.glob("*.png")}.values():
            shutil.copy2(plot, tmp / plot.name)  # training curves, confusion matrix: shown in the card
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        card.setdefault("base_model", base_model if is_adapter else None)
        card.setdefault("repo_id", f"your-namespace/{output_dir.name}")
        write_model_card(tmp, **card)
        check_files(tmp)  # never leave an export that push_folder_to_hub would refuse
    return output_dir


def _save_model(source: Path, out: Path) -> None:
    architecture = ((_read_optional(source, "config.json") or {}).get("architectures") or ["AlbertRecipesModel"])[0]
    model = _model_class(architecture).from_pretrained(source)
    model.save_pretrained(out)
    config = _read_optional(out, "config.json")
    if config.get("model_type") == MODEL_TYPE and (
        "auto_map" not in config or not all((out / name).is_file() for name in CODE_FILES)
    ):
        raise RuntimeError(f"save_pretrained did not write auto_map and {CODE_FILES}; the export would not load")


def _copy_adapter(source: Path, out: Path, base_model: str | None) -> None:
    for name in ADAPTER_FILES:
        if not (source / name).is_file():
            raise InputError(f"adapter folder {source} lacks {name} (adapters are exported as safetensors)")
        shutil.copy2(source / name, out / name)
    adapter_config = _read_optional(out, "adapter_config.json")
    if base_model:  # point the adapter at the base's Hub id, not a local training path
        adapter_config["base_model_name_or_path"] = base_model
        atomic_write_text(out / "adapter_config.json", json.dumps(adapter_config, indent=2) + "\n")
    elif (local_base := adapter_config.get("base_model_name_or_path")) and Path(local_base).exists():
        logger.warning(
            "the adapter names a local base model (%s) that nobody else can load; pass base_model=<Hub id of "
            "the base> (export.base_model=...) to point it at the published base", local_base
        )


def _save_merged(source: Path, base_model: str | None, out: Path) -> None:
    from peft import PeftModel
    from transformers import AutoConfig

    if not base_model:
        raise InputError(f"cannot merge {source}: no base model given and adapter_config.json names none")
    adapter_config = _read_optional(source, "adapter_config.json")
    suffix = PEFT_TASKS.get(adapter_config.get("task_type") or "", "Model")
    config = AutoConfig.from_pretrained(base_model)  # importing this package registered albert_recipes
    architecture = type(config).__name__.removesuffix("Config") + suffix
    model_kwargs: dict[str, Any] = {}
    classifier = adapter_head_rows(source / "adapter_model.safetensors")
    if classifier is not None:
        model_kwargs["num_labels"] = classifier
    labels = label_names(source)  # the base (a pretrained model) does not know the task's labels
    if labels and len(labels) == classifier:
        model_kwargs["id2label"] = dict(enumerate(labels))
        model_kwargs["label2id"] = {name: i for i, name in enumerate(labels)}
    elif classifier == 1 and suffix == "ForSequenceClassification":  # one output: the recipe's regression head
        model_kwargs["problem_type"] = "regression"
    base = _model_class(architecture).from_pretrained(base_model, **model_kwargs)
    merged = PeftModel.from_pretrained(base, source).merge_and_unload()
    merged.save_pretrained(out)


__all__ = [
    "check_files", "check_online", "export_for_hub", "hub_errors", "label_names", "push_folder_to_hub",
    "require_token", "validate_repo_id", "write_finetune_card", "write_model_card",
]  # fmt: skip

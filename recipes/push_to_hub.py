"""Export a trained model (or a LoRA adapter, optionally merged) for the Hugging Face Hub and upload it.

    python recipes/push_to_hub.py --config recipes/configs/push_to_hub/debug.yaml
    python recipes/push_to_hub.py --config recipes/configs/push_to_hub/default.yaml hub.repo_id=you/albert-small
    python recipes/push_to_hub.py --config recipes/configs/push_to_hub/default.yaml hub.repo_id=you/x --dry-run

The export folder holds safetensors weights, a config with `auto_map`, the two self-contained code files (so it
loads with `trust_remote_code=True` without this package), the tokenizer, the run's `recipe_config.yaml` and
`metrics.json`, and a model card (README.md). It is uploaded as one commit; `--dry-run` (or `dry_run=true`) stops
after printing what would be uploaded. The token comes from HF_TOKEN or `hf auth login` and is never printed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from albert_recipes.cli import ConfigError, config_to_dict, config_to_yaml, run_cli
from albert_recipes.errors import InputError
from albert_recipes.hub import check_online, export_for_hub, push_folder_to_hub, require_token, validate_repo_id


@dataclass
class ExportConfig:
    model_dir: Path = field(
        default=Path("outputs/pretrain/small/final"),
        metadata={"help": "a saved model folder (config.json) or a PEFT adapter folder (adapter_config.json)"},
    )
    output_dir: Path = field(
        default=Path("outputs/hub/small"), metadata={"help": "export folder to write; must be new or empty"}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty export folder"})
    merge_adapter: bool = field(
        default=False, metadata={"help": "merge a LoRA adapter into its base and export a plain model"}
    )
    base_model: str | None = field(
        default=None,
        metadata={"help": "Hub id (or folder) of an adapter's base model; defaults to the one the adapter names"},
    )


@dataclass
class CardConfig:
    datasets: list[str] = field(default_factory=list, metadata={"help": "Hub ids of the training datasets for the "
                                "card's metadata (its text names the files recorded in the run's config)"})
    tags: list[str] = field(default_factory=list, metadata={"help": "extra tags for the model card"})
    license: str = field(default="apache-2.0", metadata={"help": "license id for the model card"})
    pipeline_tag: str | None = field(default=None, metadata={"help": "Hub pipeline tag; default: from the model"})


@dataclass
class HubConfig:
    repo_id: str | None = field(default=None, metadata={"help": "target repo, namespace/name (required to upload)"})
    private: bool = field(default=True, metadata={"help": "create the repo private (ignored if it exists)"})
    revision: str | None = field(default=None, metadata={"help": "branch to commit to (created if missing)"})
    commit_message: str | None = field(default=None, metadata={"help": "commit message"})
    allow: list[str] = field(
        default_factory=list,
        metadata={"help": "glob patterns of files to upload although they look like secrets or training state"},
    )


@dataclass
class PushToHubConfig:
    export: ExportConfig = field(default_factory=ExportConfig)
    card: CardConfig = field(default_factory=CardConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    dry_run: bool = field(default=False, metadata={"help": "export and print what would be uploaded; send nothing"})

    def validate(self) -> None:
        if self.hub.repo_id is None and not self.dry_run:
            raise ConfigError("hub.repo_id is required to upload (e.g. hub.repo_id=you/albert-small), or use --dry-run")
        if self.hub.repo_id is not None:
            try:
                validate_repo_id(self.hub.repo_id)
            except ValueError as err:
                raise ConfigError(f"hub.repo_id: {err}") from None


def main(cfg: PushToHubConfig) -> str:
    # parse -> setup: every check that can fail does so before anything is written
    print(config_to_yaml(cfg))
    if not cfg.dry_run:
        check_online()
        require_token()
    repo_id = cfg.hub.repo_id or "your-namespace/your-model"  # a dry run may leave it unset

    # export (model or adapter) + model card
    card = {**config_to_dict(cfg.card), "repo_id": repo_id}
    folder = export_for_hub(
        cfg.export.model_dir,
        cfg.export.output_dir,
        merge_adapter=cfg.export.merge_adapter,
        base_model=cfg.export.base_model,
        overwrite=cfg.export.overwrite,
        card=card,
        extra_files={"export_config.yaml": config_to_yaml(cfg)},
    )
    print(f"exported {cfg.export.model_dir} -> {folder}")

    # upload (or show what would be uploaded)
    try:
        return push_folder_to_hub(
            folder,
            repo_id,
            private=cfg.hub.private,
            revision=cfg.hub.revision,
            commit_message=cfg.hub.commit_message,
            dry_run=cfg.dry_run,
            allow=cfg.hub.allow,
        )
    except InputError as err:  # e.g. no network: the export itself is complete and worth keeping
        raise InputError(f"{err}. The export {folder} is complete; to try again, rerun with "
                         "export.overwrite=true") from err


if __name__ == "__main__":
    sys.argv = ["dry_run=true" if arg == "--dry-run" else arg for arg in sys.argv]  # the familiar flag, too
    run_cli(main, PushToHubConfig, __doc__)

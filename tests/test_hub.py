"""Hub export, model card, secret filtering and the upload path (against tests/hub_server.py, a local test double)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from albert_recipes import (
    AlbertRecipesConfig, AlbertRecipesForMaskedLM, AlbertRecipesForPreTraining, AlbertRecipesForSequenceClassification,
)
from albert_recipes.cli import build_config
from albert_recipes.errors import InputError
from albert_recipes.hub import check_files, export_for_hub, push_folder_to_hub, write_model_card
from albert_recipes.tokenization import train_unigram_tokenizer

from hub_server import FakeHub
from recipe_runner import load_recipe, run_cli
from without_package import run_without_package

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TOKEN = "hf_testTOKENnotREAL0123456789abcdefgh"  # shaped like a real token so the scanners would catch it
METRICS = {"eval": {"loss": 3.25, "perplexity": 25.8, "mlm_accuracy": 0.125}, "step": 12,
           "baselines": {"mlm_unigram_token": "the", "mlm_unigram_accuracy": 0.0625}}
TRAINING_CONFIG = {"model": {"preset": "tiny"}, "train": {"lr": 0.00176, "max_steps": 12, "batch_size": 8},
                   "data": {"train_file": ["wiki/valid.txt", "wiki/test.txt"], "eval_fraction": 0.05,
                            "vocab_size": 60, "max_seq_length": 64}}
TEXTS = ["the quick brown fox jumps over the lazy dog", "albert shares parameters across all layers"] * 20


def tiny_config(**overrides) -> AlbertRecipesConfig:
    sizes = dict(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=37, max_position_embeddings=64)  # fmt: skip
    return AlbertRecipesConfig.from_preset("tiny", **{**sizes, **overrides})


def hub_env(tmp_path: Path, endpoint: str | None, token: str | None) -> dict[str, str]:
    """A child environment aimed at `endpoint`, inheriting no HF_* settings or saved login from this machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    if token:
        env["HF_TOKEN"] = token
    return env


def run_recipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, str(ROOT / "recipes" / "push_to_hub.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def all_bytes_under(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished pretraining run's final folder, plus the training debris a careless export would pick up."""
    folder = tmp_path_factory.mktemp("run") / "final"
    tokenizer = train_unigram_tokenizer(TEXTS, vocab_size=60, show_progress=False)
    torch.manual_seed(0)
    AlbertRecipesForMaskedLM(tiny_config(vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "metrics.json").write_text(json.dumps(METRICS))
    (folder / "recipe_config.yaml").write_text(yaml.safe_dump(TRAINING_CONFIG))
    for debris in ("optimizer.bin", "scheduler.pt", "rng_state_0.pth", "random_states_0.pkl"):
        (folder / debris).write_bytes(b"training state")
    (folder / ".env").write_text(f"HF_TOKEN={TOKEN}\n")
    return folder


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> Path:
    return export_for_hub(tiny_run, tmp_path_factory.mktemp("export") / "tiny", card={"datasets": ["wikitext"]})


def test_export_is_self_contained_and_clean(exported):
    names = {p.name for p in exported.iterdir()}
    assert {"model.safetensors", "config.json", "configuration_albert_recipes.py", "modeling_albert_recipes.py",
            "tokenizer.json", "README.md", "metrics.json", "recipe_config.yaml"} <= names  # fmt: skip
    assert not names & {"optimizer.bin", "scheduler.pt", "rng_state_0.pth", "random_states_0.pkl", ".env"}
    config = json.loads((exported / "config.json").read_text())
    assert config["auto_map"]["AutoModelForMaskedLM"] == "modeling_albert_recipes.AlbertRecipesForMaskedLM"
    assert TOKEN.encode() not in all_bytes_under(exported) and b"HF_TOKEN" not in all_bytes_under(exported)
    assert check_files(exported)  # what push_folder_to_hub would accept


def test_model_card_metadata_parses_back(exported):
    card = ModelCard.load(exported / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "fill-mask"
    assert data["license"] == "apache-2.0"
    assert data["datasets"] == ["wikitext"]
    assert {"albert", "albert_recipes", "custom_code"} <= set(data["tags"])
    assert data["metrics"] == ["loss", "perplexity", "mlm_accuracy"]  # the step count is no metric
    assert 'pipeline("fill-mask", model="your-namespace/tiny", trust_remote_code=True)' in card.text
    assert "| eval.perplexity | 25.8 | - |" in card.text and "| step |" not in card.text
    # the real training data, from the run's config, and the baselines of its metrics.json
    assert "- Text: `wiki/valid.txt`, `wiki/test.txt`." in card.text and "60-piece Unigram" in card.text
    assert "| mlm_unigram_accuracy | 0.0625 |" in card.text and "| mlm_unigram_token | the |" in card.text
    assert 'pip install torch "transformers>=5.0,<6"' in card.text and "not on PyPI" in card.text
    assert "## Limitations" in card.text and "12 steps at a batch of 8" in card.text
    dumped = card.text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(dumped) == TRAINING_CONFIG


def test_write_model_card_for_an_adapter_names_its_base(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_CLS", "base_model_name_or_path": "b"}))
    path = write_model_card(tmp_path, base_model="someone/albert-base", metrics={"accuracy": 0.75},
                            repo_id="me/lora", tags=["sst2"])  # fmt: skip
    card = ModelCard.load(path)
    assert card.data.library_name == "peft" and card.data.base_model == "someone/albert-base"
    assert card.data.pipeline_tag == "text-classification" and "lora" in card.data.tags and "sst2" in card.data.tags
    assert 'AutoPeftModelForSequenceClassification.from_pretrained("me/lora", trust_remote_code=True)' in card.text
    assert "| accuracy | 0.75 | - |" in card.text and '"peft>=0.15"' in card.text


def test_export_loads_where_albert_recipes_is_not_installed(exported, tiny_run, tmp_path):
    input_ids = [[2, 10, 11, 12, 13, 3, 0]]
    script = f"""
import sys, torch
from safetensors.torch import save_file
from transformers import AutoModelForMaskedLM, AutoTokenizer
model = AutoModelForMaskedLM.from_pretrained({str(exported)!r}, trust_remote_code=True).eval()
assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
assert not any(name.split(".")[0] == "albert_recipes" for name in sys.modules)
tokenizer = AutoTokenizer.from_pretrained({str(exported)!r})
ids = torch.tensor({input_ids})
with torch.no_grad():
    logits = model(input_ids=ids, attention_mask=(ids != 0).long()).logits
encoded = torch.tensor(tokenizer("the lazy dog")["input_ids"])
save_file({{"logits": logits, "encoded": encoded}}, {str(tmp_path / "out.safetensors")!r})
"""
    env = hub_env(tmp_path, endpoint=None, token=None) | {"HF_HUB_OFFLINE": "1"}
    run_without_package(script, cwd=tmp_path, env=env)
    out = load_file(tmp_path / "out.safetensors")
    model = AlbertRecipesForMaskedLM.from_pretrained(tiny_run).eval()
    ids = torch.tensor(input_ids)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=(ids != 0).long()).logits
    torch.testing.assert_close(out["logits"], expected, rtol=0, atol=0)
    from transformers import AutoTokenizer

    assert out["encoded"].tolist() == AutoTokenizer.from_pretrained(tiny_run)("the lazy dog")["input_ids"]


@pytest.mark.parametrize(
    "name, content",
    [
        ("optimizer.bin", b"x"),
        ("scheduler.pt", b"x"),
        ("rng_state_1.pth", b"x"),
        ("random_states_0.pkl", b"x"),
        ("pytorch_model.bin", b"x"),
        (".env", b"WANDB_API_KEY=abc"),
        ("id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----"),
        ("notes.txt", b"login with " + TOKEN.encode() + b" please"),
    ],
)
def test_secrets_and_training_state_are_refused_unless_allowed(tmp_path, name, content):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"refusing to upload 1 file.*{name.replace('.', '[.]')}"):
        check_files(tmp_path)
    assert [p.name for p in check_files(tmp_path, allow=[name])] == sorted(["config.json", name])


def test_the_token_in_use_is_refused_even_when_allowed(tmp_path):
    (tmp_path / "notes.txt").write_text("abc-123-the-token-xyz")
    with pytest.raises(ValueError, match="contains the Hugging Face token in use"):
        check_files(tmp_path, allow=["*"], token="abc-123-the-token-xyz")


def test_push_function_uploads_one_commit_to_main(tmp_path, fake_hub):
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "config.json").write_text('{"a": 1}')
    (tmp_path / "up" / "sub").mkdir()
    weights = os.urandom(3000)
    (tmp_path / "up" / "sub" / "weights.safetensors").write_bytes(weights)
    url = push_folder_to_hub(tmp_path / "up", "org/plain", private=False, commit_message="first")
    assert fake_hub.repos["org/plain"].private is False
    assert fake_hub.files("org/plain") == {"config.json": b'{"a": 1}', "sub/weights.safetensors": weights}
    assert [c["summary"] for c in fake_hub.commits] == ["first"] and url.endswith(fake_hub.commits[0]["oid"])
    assert fake_hub.lfs_objects  # the 3 kB file took the LFS route


def test_cli_export_and_push_arrive_byte_for_byte(tiny_run, tmp_path):
    out = tmp_path / "export"
    with FakeHub() as hub:
        done = run_recipe(
            "--config", "recipes/configs/push_to_hub/debug.yaml", f"export.model_dir={tiny_run}",
            f"export.output_dir={out}", "hub.repo_id=org/albert-tiny", "hub.revision=experiment-1", "dry_run=false",
            env=hub_env(tmp_path, hub.url, TOKEN),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        sent = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert hub.files("org/albert-tiny", "experiment-1") == sent
        assert hub.files("org/albert-tiny", "main") == {}  # the branch was made, main left alone
        assert len(hub.commits) == 1 and hub.repos["org/albert-tiny"].private is True
        assert hub.lfs_objects  # model.safetensors went through the LFS batch + PUT
        api_calls = [r for r in hub.requests if r.path.startswith("/api/") and r.method == "POST"]
        assert api_calls and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in api_calls)
    assert TOKEN not in done.stdout + done.stderr
    assert TOKEN.encode() not in all_bytes_under(tmp_path)
    card = ModelCard.load(out / "README.md")
    assert 'pipeline("fill-mask", model="org/albert-tiny", trust_remote_code=True)' in card.text


def test_cli_dry_run_and_bad_input(tiny_run, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    common = ["--config", "recipes/configs/push_to_hub/debug.yaml", "export.overwrite=false", "dry_run=false"]
    model = f"export.model_dir={tiny_run}"
    cases = [  # argv, token, expected exit status, expected message
        ([model, f"export.output_dir={tmp_path}/dry", "--dry-run"], None, 0, None),
        ([model, f"export.output_dir={tmp_path}/a", "hub.repo_id=a--b/c"], TOKEN, 2, "invalid repo id 'a--b/c'"),
        ([f"export.model_dir={tmp_path}/nope", f"export.output_dir={tmp_path}/b", "hub.repo_id=o/r"], TOKEN, 2,
         "model folder not found"),
        ([model, f"export.output_dir={busy}", "hub.repo_id=o/r"], TOKEN, 2, f"export folder {busy} is not empty"),
        ([model, f"export.output_dir={tmp_path}/d", "hub.repo_id=o/r"], None, 2, "no Hugging Face token found"),
        ([model, f"export.output_dir={tmp_path}/e"], TOKEN, 2, "hub.repo_id is required"),
        ([model, f"export.output_dir={tiny_run.parent}", "export.overwrite=true", "hub.repo_id=o/r"], TOKEN, 2,
         "would replace the model folder"),
        # no network: the push names the endpoint and what to check; the finished export is kept and said so
        ([model, f"export.output_dir={tmp_path}/f", "hub.repo_id=o/r"], TOKEN, 2,
         "cannot reach the Hugging Face Hub at http://127.0.0.1:9 (ConnectError"),
        # offline mode: refused before anything is exported
        ([model, f"export.output_dir={tmp_path}/g", "hub.repo_id=o/r", "OFFLINE"], TOKEN, 2,
         "HF_HUB_OFFLINE is set, so nothing can be uploaded"),
    ]  # fmt: skip
    runs = [{"argv": common + [a for a in argv if a != "OFFLINE"],
             "env": {"HF_TOKEN": token, "HF_HUB_OFFLINE": "1" if "OFFLINE" in argv else "0"}}
            for argv, token, _, _ in cases]
    env = hub_env(tmp_path, "http://127.0.0.1:9", None)  # nothing listens there: any upload attempt would fail
    results = run_cli("push_to_hub", runs, env=env)
    for (argv, _, code, message), result in zip(cases, results):
        assert result["code"] == code, (argv, result["stderr"][-2000:])
        assert "Traceback" not in result["stderr"], argv
        if message:
            assert message in result["stderr"], (argv, result["stderr"][-2000:])

    dry = results[0]["stdout"]
    size = (tmp_path / "dry" / "model.safetensors").stat().st_size
    assert "[dry run] would upload" in dry and re.search(rf"model\.safetensors +{size / 1024:.1f} KB", dry)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert not any((tmp_path / name).exists() for name in "abdeg")
    assert f"The export {tmp_path}/f is complete; to try again, rerun with export.overwrite=true" in results[7]["stderr"]
    assert sum(line.startswith("error:") for line in results[7]["stderr"].splitlines()) == 1


def test_push_with_a_refused_token_says_so_in_one_line(tmp_path, fake_hub):
    (tmp_path / "config.json").write_text("{}")
    fake_hub.valid_tokens = {"hf_someoneELSEStoken0123456789abcdefgh"}
    with pytest.raises(InputError, match=r"the Hub at http://127\.0\.0\.1:\d+ refused the token \(HTTP 401: "):
        push_folder_to_hub(tmp_path, "org/x")
    assert fake_hub.commits == []


LABELS = ["negative", "neutral", "positive"]


def _lora_classifier(tmp_path: Path):
    """A fine-tuning run's adapter/ on a pretrained base that knows no labels (as the pretraining export)."""
    from peft import LoraConfig, get_peft_model

    tokenizer = train_unigram_tokenizer(TEXTS, vocab_size=60, show_progress=False)
    torch.manual_seed(0)
    base_dir = tmp_path / "pretrained"
    AlbertRecipesForPreTraining(tiny_config(vocab_size=len(tokenizer))).save_pretrained(base_dir)
    lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"])
    head = AlbertRecipesForSequenceClassification.from_pretrained(
        base_dir, num_labels=3, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    model = get_peft_model(head, lora)
    with torch.no_grad():  # a trained adapter: B is no longer zero, so merging changes the weights
        for name, param in model.named_parameters():
            if "lora_B" in name or "classifier" in name:
                param.add_(torch.randn_like(param) * 0.1)
    run = tmp_path / "finetune"
    adapter_dir = run / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    result = {"task": "sequence_classification", "mode": "lora", "eval": {"accuracy": 0.625, "f1": 0.5},
              "baselines": {"majority_class_accuracy": 0.375}, "label_names": LABELS, "eval_examples": 8,
              "train": {"examples": 32, "steps": 4}, "parameters": {"trainable": 10, "total": 100}}
    recipe_config = {"model": {"name_or_path": str(base_dir)}, "finetune": {"mode": "lora"},
                     "data": {"task": "sequence_classification", "train_file": "reviews/train.tsv",
                              "validation_file": "reviews/dev.tsv", "text_column": "sentence",
                              "label_column": "label", "max_length": 32}, "lora": {"r": 4, "alpha": 8}}
    (run / "metrics.json").write_text(json.dumps(result))
    (run / "recipe_config.yaml").write_text(yaml.safe_dump(recipe_config))
    return base_dir, adapter_dir, model.eval()


# Runs the `## Usage` code of several model cards, with the repo id replaced by a local folder, in one interpreter
# where albert_recipes cannot be imported: exactly what a user of the Hub repository would run.
def _run_card_snippets(cards: dict[Path, Path], tmp_path: Path) -> str:
    blocks = []
    for card, folder in cards.items():
        text = card.read_text(encoding="utf-8")
        code = text.split("## Usage", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
        repo_id = re.search(r'from_pretrained\("([^"]+)"|model="([^"]+)"', code).group(1, 2)
        blocks.append(code.replace(next(r for r in repo_id if r), str(folder)))
    env = hub_env(tmp_path, endpoint=None, token=None) | {"HF_HUB_OFFLINE": "1"}
    return run_without_package("\n".join(blocks), cwd=tmp_path, env=env).stdout


def test_adapter_exports_plain_and_merged_keep_labels_and_their_cards_run(tmp_path, exported):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    base_dir, adapter_dir, peft_model = _lora_classifier(tmp_path)
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits

    plain = export_for_hub(adapter_dir, tmp_path / "plain", base_model=str(base_dir))
    assert {p.name for p in plain.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors", "README.md",
                                                 "metrics.json", "recipe_config.yaml", "tokenizer.json"}  # fmt: skip
    plain_card = ModelCard.load(plain / "README.md")
    assert plain_card.data.library_name == "peft" and "id2label={0: 'negative', 1: 'neutral'" in plain_card.text
    assert "- Training: `reviews/train.tsv` (32 examples)." in plain_card.text
    assert "| accuracy | 0.625 | 0.375 (majority_class_accuracy) |" in plain_card.text
    assert "More Information Needed" not in plain_card.text  # PEFT's empty template
    base = AutoModelForSequenceClassification.from_pretrained(base_dir, num_labels=3)
    with torch.no_grad():
        reloaded = PeftModel.from_pretrained(base, plain).eval()(input_ids=ids).logits
    torch.testing.assert_close(reloaded, expected)

    merged = export_for_hub(adapter_dir, tmp_path / "merged", merge_adapter=True, base_model=str(base_dir))
    assert not (merged / "adapter_config.json").exists() and (merged / "modeling_albert_recipes.py").is_file()
    model = AutoModelForSequenceClassification.from_pretrained(merged, trust_remote_code=True).eval()
    assert model.config.id2label == dict(enumerate(LABELS))  # the base knew no labels; the export keeps them
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-5)
    assert ModelCard.load(merged / "README.md").data.pipeline_tag == "text-classification"

    printed = _run_card_snippets({plain / "README.md": plain, merged / "README.md": merged,
                                  exported / "README.md": exported}, tmp_path).splitlines()
    adapter_out, merged_out, fill_out = (ast.literal_eval(line) for line in printed[-3:])
    assert adapter_out[0]["label"] == merged_out[0]["label"]  # the same model, through PEFT and merged
    assert adapter_out[0]["score"] == pytest.approx(merged_out[0]["score"], abs=1e-5)
    assert adapter_out[0]["label"] in LABELS and 0 < adapter_out[0]["score"] <= 1
    assert len(fill_out) == 5 and all("token_str" in guess for guess in fill_out)


def test_finetune_recipe_push_to_hub_sends_its_export(tmp_path, fake_hub, tiny_run):
    """The training recipes' `hub.push_to_hub=true` branch goes through the same card + one-commit upload; from a
    pretrained base that knows no labels, the adapter loads with PEFT's AutoPeftModel... and keeps the names."""
    from peft import AutoPeftModelForSequenceClassification

    recipe = load_recipe("finetune_lora")
    threads = torch.get_num_threads()
    overrides = ["data.synthetic_examples=64", "train.epochs=1", f"output_dir={tmp_path / 'ft'}",
                 "hub.push_to_hub=true", "hub.repo_id=org/albert-lora", "hub.revision=v1", "model.preset=",
                 f"model.name_or_path={tiny_run}", "data.label_names=[negative,positive]"]  # fmt: skip
    cfg = build_config(recipe.FinetuneLoraConfig, ROOT / "recipes/configs/finetune_lora/debug.yaml", overrides)
    try:
        recipe.main(cfg)
    finally:
        torch.set_num_threads(threads)  # the recipe may pin threads for reproducibility
    merged = tmp_path / "ft" / "merged"  # the debug config saves the merged model, which is what gets pushed
    assert fake_hub.files("org/albert-lora", "v1") == {
        p.relative_to(merged).as_posix(): p.read_bytes() for p in merged.rglob("*") if p.is_file()
    }
    assert len(fake_hub.commits) == 1
    card = ModelCard.load(merged / "README.md")
    assert card.data.pipeline_tag == "text-classification" and "accuracy" in card.data.metrics
    assert 'pipeline("text-classification", model="org/albert-lora", trust_remote_code=True)' in card.text
    # every export of the run carries our card; the adapter's replaces PEFT's empty template
    adapter_card = (tmp_path / "ft" / "adapter" / "README.md").read_text()
    assert "## Training data" in adapter_card and "More Information Needed" not in adapter_card
    assert "**Generated toy data, not real text**" in adapter_card and "**Not pretrained.**" not in adapter_card
    adapter = AutoPeftModelForSequenceClassification.from_pretrained(tmp_path / "ft" / "adapter")
    assert adapter.config.id2label == {0: "negative", 1: "positive"}
    assert json.loads((merged / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}


def test_pretrain_recipe_push_card_shows_the_figures_beside_their_baselines(tmp_path, fake_hub):
    """The pretraining recipe's pushed card carries the held-out figures and every trivial baseline the run printed:
    the unigram and context-free MLM accuracy, the unigram model's loss at [MASK] inputs, the SOP majority labels."""
    recipe = load_recipe("pretrain")
    overrides = [f"output_dir={tmp_path / 'pre'}", f"data.cache_dir={tmp_path / 'cache'}", "train.max_steps=12",
                 "train.warmup_steps=2", "train.eval_every=12", "train.save_every=0", "train.report_to=none",
                 "train.eval_max_examples=32", "hub.push_to_hub=true", "hub.repo_id=org/albert-pre"]  # fmt: skip
    metrics = recipe.main(build_config(recipe.PretrainConfig, ROOT / "recipes/configs/pretrain/debug.yaml", overrides))
    card = (tmp_path / "pre" / "final" / "README.md").read_text()
    for key in ("eval/mlm_masked_accuracy", "eval/mlm_masked_loss", *metrics["baselines"]):
        assert key in card, key
    assert fake_hub.files("org/albert-pre", "main")["README.md"].decode() == card

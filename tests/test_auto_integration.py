"""The model as a transformers citizen: Auto classes, remote code without this package, pipelines, Trainer."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    Trainer,
    TrainingArguments,
    pipeline,
)

import albert_recipes
from albert_recipes import AlbertRecipesConfig
from without_package import run_without_package

SMALL = dict(
    embedding_size=16,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=48,
    max_position_embeddings=64,
)


def test_auto_config_and_models_from_config(tmp_path):
    config = AutoConfig.for_model("albert_recipes", vocab_size=120, **SMALL)
    assert isinstance(config, AlbertRecipesConfig)
    model = AutoModelForMaskedLM.from_config(config)
    assert isinstance(model, albert_recipes.AlbertRecipesForMaskedLM)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "albert_recipes"
    assert saved["auto_map"]["AutoModel"] == "modeling_albert_recipes.AlbertRecipesModel"
    assert {p.name for p in tmp_path.iterdir()} >= {
        "configuration_albert_recipes.py",
        "modeling_albert_recipes.py",
        "model.safetensors",
    }
    base = AutoModel.from_pretrained(tmp_path)
    assert isinstance(base, albert_recipes.AlbertRecipesModel)
    torch.testing.assert_close(
        base.embeddings.word_embeddings.weight, model.albert.embeddings.word_embeddings.weight
    )


def test_remote_code_loads_where_the_package_is_not_importable(tmp_path):
    torch.manual_seed(0)
    model = albert_recipes.AlbertRecipesForSequenceClassification(
        AlbertRecipesConfig(vocab_size=120, num_labels=3, **SMALL)
    ).eval()
    model.save_pretrained(tmp_path)
    ids = torch.tensor([[2, 17, 44, 91, 3], [2, 8, 9, 3, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
    out = run_without_package(
        f"""
        import json, torch
        from transformers import AutoModelForSequenceClassification, AutoModel
        model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()
        AutoModel.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        ids = torch.tensor({ids.tolist()})
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=(ids != 0).long()).logits
        print(json.dumps({{"cls": type(model).__module__ + "." + type(model).__name__, "logits": logits.tolist()}}))
        """
    ).stdout
    payload = json.loads(out.strip().splitlines()[-1])
    assert "albert_recipes" not in payload["cls"].split(".")[0]  # the copy in the folder, not the package
    assert payload["cls"].endswith("modeling_albert_recipes.AlbertRecipesForSequenceClassification")
    torch.testing.assert_close(torch.tensor(payload["logits"]), expected, atol=1e-6, rtol=0)


def test_fill_mask_pipeline(tiny_tokenizer):
    model = AutoModelForMaskedLM.from_config(
        AlbertRecipesConfig(vocab_size=len(tiny_tokenizer), pad_token_id=tiny_tokenizer.pad_token_id, **SMALL)
    )
    fill = pipeline("fill-mask", model=model, tokenizer=tiny_tokenizer, device="cpu")
    predictions = fill(f"The value of the {tiny_tokenizer.mask_token} is returned.", top_k=3)
    assert len(predictions) == 3
    assert all({"score", "token", "token_str", "sequence"} <= set(p) for p in predictions)
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1


def test_text_classification_pipeline(tiny_tokenizer):
    config = AlbertRecipesConfig(
        vocab_size=len(tiny_tokenizer),
        pad_token_id=tiny_tokenizer.pad_token_id,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
        **SMALL,
    )
    model = AutoModelForSequenceClassification.from_config(config)
    classify = pipeline("text-classification", model=model, tokenizer=tiny_tokenizer, device="cpu")
    results = classify(["A fine function.", "An error is raised."])
    assert [r["label"] in {"negative", "positive"} for r in results] == [True, True]
    assert all(0.5 <= r["score"] <= 1 for r in results)


def test_trainer_trains_sequence_classification(tiny_tokenizer, tmp_path):
    texts = ["the list is sorted", "an error is raised", "the value is returned", "the file is closed"] * 8
    labels = [0, 1, 0, 1] * 8
    encoded = tiny_tokenizer(texts, padding="max_length", max_length=16, truncation=True)
    dataset = [
        {"input_ids": i, "attention_mask": m, "labels": y}
        for i, m, y in zip(encoded["input_ids"], encoded["attention_mask"], labels)
    ]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(
        AlbertRecipesConfig(
            vocab_size=len(tiny_tokenizer), pad_token_id=tiny_tokenizer.pad_token_id, num_labels=2, **SMALL
        )
    )
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_train_epochs=6,
        learning_rate=3e-3,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    result = trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert result.global_step == 24
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_attn_implementation_is_selectable_at_load(tmp_path, attn_implementation):
    albert_recipes.AlbertRecipesModel(AlbertRecipesConfig(vocab_size=50, **SMALL)).save_pretrained(tmp_path)
    model = AutoModel.from_pretrained(tmp_path, attn_implementation=attn_implementation)
    assert model.config._attn_implementation == attn_implementation

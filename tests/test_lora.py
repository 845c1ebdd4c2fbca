"""PEFT integration: registered LoRA defaults, one adapter on the shared layer, save/load and merge equality."""

import subprocess
import sys

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
from transformers import AutoModelForSequenceClassification

import albert_recipes
from albert_recipes.lora import (
    DEFAULT_TARGET_MODULES,
    RECIPE_TARGET_MODULES,
    count_parameters,
    lora_config,
    register_peft_defaults,
)

TINY = {"vocab_size": 120, "embedding_size": 16, "hidden_size": 32, "num_attention_heads": 2,
        "intermediate_size": 64, "num_hidden_layers": 3}


def _model(cls=albert_recipes.AlbertRecipesForSequenceClassification, **overrides):
    torch.manual_seed(0)
    return cls(albert_recipes.AlbertRecipesConfig.from_preset("tiny", **{**TINY, **overrides})).eval()


def _adapted(model):
    return sorted(name for name, module in model.named_modules() if isinstance(module, LoraLayer))


def _inputs():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(5, TINY["vocab_size"], (3, 10), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 6:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def _randomize_adapter(model):
    # LoRA's B starts at zero (the adapter is a no-op); random values make the equality checks meaningful
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.2)


def test_lora_config_without_target_modules_uses_registered_defaults():
    assert register_peft_defaults() is True
    assert TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING["albert_recipes"] == list(DEFAULT_TARGET_MODULES)
    model = get_peft_model(_model(), LoraConfig(task_type="SEQ_CLS", r=4))
    adapted = _adapted(model)
    # one adapter per matrix of the ONE shared layer, whatever num_hidden_layers (3 here) is
    layer = "base_model.model.albert.encoder.albert_layer_groups.0.albert_layers.0."
    expected = [layer + n for n in ("attention.dense", "attention.key", "attention.query", "attention.value",
                                    "ffn", "ffn_output")] + ["base_model.model.albert.pooler"]
    assert adapted == sorted(expected)
    assert "classifier" in model.peft_config["default"].modules_to_save
    trainable, total = count_parameters(model)
    deeper = get_peft_model(_model(num_hidden_layers=12), LoraConfig(task_type="SEQ_CLS", r=4))
    assert count_parameters(deeper) == (trainable, total)  # depth costs no parameters, adapter included
    assert 0 < trainable < total / 4


def test_plain_import_registers_the_defaults():
    """What a user writes: import the package, then LoraConfig without target_modules (fresh interpreter, so no
    other test has registered anything)."""
    code = (
        "import albert_recipes, torch\n"
        "from peft import LoraConfig, get_peft_model\n"
        "config = albert_recipes.AlbertRecipesConfig.from_preset('tiny', vocab_size=50, embedding_size=8, "
        "hidden_size=16, num_attention_heads=2, intermediate_size=32, num_hidden_layers=2)\n"
        "model = get_peft_model(albert_recipes.AlbertRecipesForSequenceClassification(config), "
        "LoraConfig(task_type='SEQ_CLS'))\n"
        "print(sorted(model.peft_config['default'].target_modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(sorted(DEFAULT_TARGET_MODULES))


@pytest.mark.parametrize(("cls", "task_type", "head"), [
    (albert_recipes.AlbertRecipesForTokenClassification, "TOKEN_CLS", "classifier"),
    (albert_recipes.AlbertRecipesForQuestionAnswering, "QUESTION_ANS", "qa_outputs"),
])
def test_task_heads_are_saved_in_full(cls, task_type, head):
    model = get_peft_model(_model(cls), lora_config(task_type, r=2))
    assert head in model.peft_config["default"].modules_to_save
    assert all(p.requires_grad for n, p in model.named_parameters() if f"{head}.modules_to_save" in n)
    assert len(_adapted(model)) == 6  # no pooler in these models


def test_masked_lm_head_dense_is_not_adapted():
    model = get_peft_model(_model(albert_recipes.AlbertRecipesForMaskedLM), LoraConfig(r=2))
    assert not any("predictions" in name for name in _adapted(model))


def test_lora_config_rejects_bad_values():
    with pytest.raises(ValueError, match="rank r must be at least 1"):
        lora_config("SEQ_CLS", r=0)
    with pytest.raises(ValueError, match="unknown task_type 'CAUSAL_LM'"):
        lora_config("CAUSAL_LM")


def test_recipe_variant_adds_an_embedding_adapter():
    model = get_peft_model(_model(), lora_config("SEQ_CLS", r=4, target_modules=list(RECIPE_TARGET_MODULES)))
    assert "base_model.model.albert.embeddings.word_embeddings" in _adapted(model)
    plain = get_peft_model(_model(), lora_config("SEQ_CLS", r=4))
    # rank 4 on the (vocab 120, E 16) embedding matrix, nothing else
    assert count_parameters(model)[0] - count_parameters(plain)[0] == 4 * (120 + 16)
    assert not model.get_input_embeddings().weight.requires_grad  # the matrix itself stays frozen


@pytest.mark.parametrize("variant", ["registered", "recipe"])
def test_adapter_round_trip_and_merge_give_identical_outputs(tmp_path, variant):
    _model().save_pretrained(tmp_path / "base")
    targets = list(RECIPE_TARGET_MODULES) if variant == "recipe" else None
    config = lora_config("SEQ_CLS", r=4, dropout=0.0, target_modules=targets)
    model = get_peft_model(_model(), config).eval()
    _randomize_adapter(model)
    with torch.no_grad():
        adapter_logits = model(**_inputs()).logits
        base_logits = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base")(**_inputs()).logits
    assert not torch.allclose(adapter_logits, base_logits, atol=1e-3)  # the adapter does change the outputs
    model.save_pretrained(tmp_path / "adapter")

    reloaded = PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(tmp_path / "base"),
                                         tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**_inputs()).logits, adapter_logits, rtol=0, atol=0)

    reloaded.merge_and_unload().save_pretrained(tmp_path / "merged")
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged").eval()
    assert type(merged) is albert_recipes.AlbertRecipesForSequenceClassification
    with torch.no_grad():
        torch.testing.assert_close(merged(**_inputs()).logits, adapter_logits, rtol=1e-5, atol=1e-5)

"""Cross-layer extensions (ours, not the paper's): RealFormer residual attention, DenseFormer depth-weighted
averaging, elastic depth (`num_layers`), LayerDrop, and PABEE early exit with batched row dropping."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoModelForSequenceClassification, pipeline

import albert_recipes
from albert_recipes import AlbertRecipesConfig
from without_package import run_without_package

SMALL = dict(
    vocab_size=60,
    embedding_size=16,
    hidden_size=32,
    num_hidden_layers=6,
    num_attention_heads=4,
    intermediate_size=48,
    max_position_embeddings=32,
    classifier_dropout_prob=0.0,
    attn_implementation="eager",
)
FLAGS = {
    "residual_attention": {"residual_attention": True},
    "depth_weighted_average": {"depth_weighted_average": True},
    "layerdrop": {"layerdrop": 0.3},
    "early_exit_classifiers": {"early_exit_classifiers": True},
}
HEADS = [
    "AlbertRecipesModel",
    "AlbertRecipesForPreTraining",
    "AlbertRecipesForMaskedLM",
    "AlbertRecipesForSequenceClassification",
    "AlbertRecipesForTokenClassification",
    "AlbertRecipesForQuestionAnswering",
    "AlbertRecipesForMultipleChoice",
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread is faster, and steady on a busy machine (two spin against each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config(**overrides) -> AlbertRecipesConfig:
    return AlbertRecipesConfig(**{**SMALL, "num_labels": 2, **overrides})


def build(cls_name: str = "AlbertRecipesForSequenceClassification", seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return getattr(albert_recipes, cls_name)(config(**overrides)).eval()


def batch(seed: int = 0, rows: int = 5, length: int = 10) -> dict[str, torch.Tensor]:
    """Rows of different lengths (right padding), so masks and row selection are exercised."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, SMALL["vocab_size"], (rows, length), generator=generator)
    mask = torch.ones(rows, length, dtype=torch.long)
    for row in range(rows):
        cut = length - (row * 2) % (length - 3)
        ids[row, cut:], mask[row, cut:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


def same_weights(target, source) -> None:
    missing, unexpected = target.load_state_dict(source.state_dict(), strict=False)
    assert not unexpected


# --- defaults and validation ------------------------------------------------------------------------------------


def test_defaults_are_off_and_add_no_parameters():
    cfg = AlbertRecipesConfig()
    assert (cfg.residual_attention, cfg.depth_weighted_average, cfg.layerdrop) == (False, False, 0.0)
    assert (cfg.early_exit_classifiers, cfg.early_exit_patience, cfg.early_exit_threshold) == (False, 0, 0.0)
    plain = build()
    stock = __import__("transformers").AlbertForSequenceClassification(
        __import__("transformers").AlbertConfig(**{k: v for k, v in config().to_dict().items()})
    )
    assert plain.state_dict().keys() == stock.state_dict().keys()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"layerdrop": 1.0}, "layerdrop"),
        ({"layerdrop": -0.1}, "layerdrop"),
        ({"early_exit_patience": -1, "early_exit_classifiers": True}, "early_exit_patience"),
        ({"early_exit_patience": 2}, "early_exit_classifiers"),
        ({"early_exit_threshold": -0.5, "early_exit_classifiers": True}, "early_exit_threshold"),
    ],
)
def test_invalid_values_raise_a_clear_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        build(**overrides)


def test_patience_set_after_loading_is_checked_at_forward():
    model = build()
    model.config.early_exit_patience = 3
    with pytest.raises(ValueError, match="early_exit_classifiers"):
        model(**batch())


@pytest.mark.parametrize("num_layers", [0, 7, -1, 2.5])
def test_num_layers_outside_the_depth_raises(num_layers):
    with pytest.raises(ValueError, match="num_layers"):
        build("AlbertRecipesModel")(**batch(), num_layers=num_layers)


def test_early_exit_refuses_packed_rows_but_takes_plain_position_ids():
    model = build(early_exit_classifiers=True, early_exit_patience=1)
    inputs = batch(rows=2, length=8)
    plain = torch.arange(8).expand(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs, position_ids=plain).logits, model(**inputs).logits)
    packed = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]] * 2)  # two examples per row
    with pytest.raises(ValueError, match="one example per row"):
        model(**inputs, position_ids=packed)


# --- each flag changes outputs and trains ----------------------------------------------------------------------


def _tiny_task(rows: int = 48, length: int = 8):
    """Label 1 when token 7 occurs in the sentence: learnable from attention in a few dozen steps."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(8, SMALL["vocab_size"], (rows, length), generator=generator)
    labels = torch.arange(rows) % 2
    positions = torch.randint(1, length, (rows,), generator=generator)
    ids[labels == 1, positions[labels == 1]] = 7
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, labels


def _train(model, steps: int = 30) -> list[float]:
    inputs, labels = _tiny_task()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


@pytest.fixture(scope="module")
def baseline_losses() -> list[float]:
    torch.manual_seed(0)
    return _train(build(seed=3))


@pytest.mark.parametrize("flag", list(FLAGS))
def test_each_flag_changes_outputs_and_trains(flag, baseline_losses):
    flagged = build(seed=3, **FLAGS[flag])
    same_weights(flagged, build(seed=3))  # the baseline's initial weights (the flags add none at random)
    torch.manual_seed(0)
    losses = _train(flagged)
    assert losses != baseline_losses, f"{flag} changed nothing in training"
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0], f"{flag}: loss did not fall ({losses[0]:.3f} -> {losses[-1]:.3f})"


# --- residual attention (RealFormer) ---------------------------------------------------------------------------


def _reference_residual_attention(model, inputs):
    """RealFormer written out: scores_i = q k^T / sqrt(d) + scores_{i-1}; softmax(scores_i + mask); pass scores_i."""
    albert = model.albert
    hidden = albert.encoder.embedding_hidden_mapping_in(albert.embeddings(inputs["input_ids"], None, None, None))
    additive = (1.0 - inputs["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
    layer = albert.encoder.albert_layer_groups[0].albert_layers[0]
    attention = layer.attention
    previous = None
    states = [hidden]
    for _ in range(model.config.num_hidden_layers):
        b, t, _ = hidden.shape
        split = lambda x: x.view(b, t, -1, attention.head_dim).transpose(1, 2)  # noqa: E731
        q, k, v = split(attention.query(hidden)), split(attention.key(hidden)), split(attention.value(hidden))
        scores = q @ k.transpose(-1, -2) * attention.scaling
        if previous is not None:
            scores = scores + previous
        previous = scores
        context = (torch.softmax(scores + additive, -1) @ v).transpose(1, 2).reshape(b, t, -1)
        attended = attention.LayerNorm(hidden + attention.dense(context))
        hidden = layer.full_layer_layer_norm(layer.ffn_output(layer.activation(layer.ffn(attended))) + attended)
        states.append(hidden)
    return states


def test_residual_attention_matches_realformer_and_its_first_application_equals_the_baseline():
    baseline, residual = build(), build(residual_attention=True)
    same_weights(residual, baseline)
    inputs = batch()
    with torch.no_grad():
        plain = baseline(**inputs, output_hidden_states=True).hidden_states
        ours = residual(**inputs, output_hidden_states=True).hidden_states
        reference = _reference_residual_attention(residual, inputs)
    torch.testing.assert_close(ours[1], plain[1], atol=0, rtol=0)
    assert not torch.allclose(ours[2], plain[2])
    rows = inputs["attention_mask"].bool()
    for depth, (a, b) in enumerate(zip(ours, reference)):
        torch.testing.assert_close(a[rows], b[rows], atol=1e-5, rtol=1e-5, msg=f"hidden state {depth}")


def test_residual_attention_with_groups_masks_and_checkpointing():
    overrides = dict(residual_attention=True, num_hidden_groups=2, inner_group_num=2, num_hidden_layers=4)
    model = build("AlbertRecipesModel", **overrides)
    inputs = batch()
    # padding changes nothing for the real tokens: the mask is applied after the sum of scores
    with torch.no_grad():
        full = model(**inputs).last_hidden_state
        for row in range(inputs["input_ids"].shape[0]):
            keep = inputs["attention_mask"][row].bool()
            alone = model(input_ids=inputs["input_ids"][row, keep][None]).last_hidden_state[0]
            torch.testing.assert_close(full[row, keep], alone, atol=1e-5, rtol=1e-5)

    def gradients():
        model.zero_grad()
        model(**inputs).last_hidden_state.square().mean().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.train()
    plain = gradients()
    model.gradient_checkpointing_enable()
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5, msg=name)


def test_residual_attention_under_sdpa_falls_back_to_eager_and_warns_once(caplog):
    eager = build(residual_attention=True)
    sdpa = build(residual_attention=True, attn_implementation="sdpa")
    same_weights(sdpa, eager)
    inputs = batch()
    with caplog.at_level(logging.WARNING), torch.no_grad():
        a = sdpa(**inputs).logits
        sdpa(**inputs)
    torch.testing.assert_close(a, eager(**inputs).logits, atol=1e-6, rtol=1e-6)
    warnings = [r for r in caplog.records if "residual_attention" in r.getMessage()]
    assert len(warnings) == 1


# --- depth-weighted averaging (DenseFormer) --------------------------------------------------------------------


def test_depth_weighted_average_is_the_identity_at_init_also_after_save_and_load(tmp_path):
    baseline, dense = build(), build(depth_weighted_average=True)
    same_weights(dense, baseline)  # the averaging weights are not in the baseline: they keep their init
    inputs = batch()
    with torch.no_grad():
        expected = baseline(**inputs).logits
        assert torch.equal(dense(**inputs).logits, expected)
    dense.save_pretrained(tmp_path / "dense")
    baseline.save_pretrained(tmp_path / "baseline")
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "dense", attn_implementation="eager")
    # a checkpoint without the weights (stock or baseline) gets the identity, not random numbers
    upgraded = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "baseline", depth_weighted_average=True, attn_implementation="eager"
    )
    reloaded.eval(), upgraded.eval()
    with torch.no_grad():
        assert torch.equal(reloaded(**inputs).logits, expected)
        assert torch.equal(upgraded(**inputs).logits, expected)


def test_depth_weighted_average_matches_denseformer_and_trained_weights_survive_reload(tmp_path):
    model = build("AlbertRecipesModel", depth_weighted_average=True)
    weights = model.encoder.depth_weights.weight
    with torch.no_grad():
        weights.copy_(torch.randn(weights.shape, generator=torch.Generator().manual_seed(5)))
    inputs = batch()
    layer = model.encoder.albert_layer_groups[0].albert_layers[0]
    with torch.no_grad():
        ours = model(**inputs, output_hidden_states=True)
        mask = (1.0 - inputs["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
        outputs = [model.encoder.embedding_hidden_mapping_in(model.embeddings(inputs["input_ids"], None, None, None))]
        current = outputs[0]
        for depth in range(model.config.num_hidden_layers):
            outputs.append(layer(current, mask))
            if depth < model.config.num_hidden_layers - 1:
                current = sum(weights[depth, j] * x for j, x in enumerate(outputs))
    # the last application's output is the model's output (the averages feed the applications in between)
    torch.testing.assert_close(ours.last_hidden_state, outputs[-1], atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path)
    torch.testing.assert_close(reloaded.encoder.depth_weights.weight, weights, atol=0, rtol=0)


# --- elastic depth and LayerDrop -------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["none", "residual_attention", "depth_weighted_average"])
def test_num_layers_equals_the_first_hidden_states_of_the_full_run(flag):
    overrides = {"none": {}}.get(flag, {flag: True})
    model = build("AlbertRecipesModel", **overrides)
    if flag == "depth_weighted_average":
        with torch.no_grad():
            model.encoder.depth_weights.weight.normal_(0.3, 0.2)
    inputs = batch()
    with torch.no_grad():
        full = model(**inputs, output_hidden_states=True).hidden_states
        for k in (1, 3, 6):
            short = model(**inputs, num_layers=k, output_hidden_states=True)
            assert len(short.hidden_states) == k + 1
            for a, b in zip(short.hidden_states, full):
                torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("head", HEADS)
def test_every_head_accepts_num_layers(head):
    model = build(head)
    inputs = batch()
    if head == "AlbertRecipesForMultipleChoice":
        inputs = {k: v[:, None].expand(-1, 2, -1) for k, v in inputs.items()}
    with torch.no_grad():
        full, short = model(**inputs), model(**inputs, num_layers=2)
    first = next(key for key, value in full.items() if isinstance(value, torch.Tensor))
    assert full[first].shape == short[first].shape
    assert not torch.allclose(full[first], short[first])


def test_layerdrop_skips_whole_applications_in_training_only():
    model = build("AlbertRecipesModel", layerdrop=0.5)
    calls = []
    model.encoder.albert_layer_groups[0].albert_layers[0].register_forward_hook(lambda *_: calls.append(1))
    inputs = batch()
    kept_counts = set()
    with torch.no_grad():
        eval_out = model(**inputs).last_hidden_state
        assert len(calls) == 6
        for seed in range(8):
            calls.clear()
            model.train()
            torch.manual_seed(seed)
            out = model(**inputs).last_hidden_state
            kept = len(calls)
            kept_counts.add(kept)
            # one shared layer: skipping any d applications equals running the first 6 - d of them
            model.eval()
            if kept:
                torch.testing.assert_close(out, model(**inputs, num_layers=kept).last_hidden_state, atol=0, rtol=0)
            else:
                embedded = model.embeddings(inputs["input_ids"], None, None, None)
                projected = model.encoder.embedding_hidden_mapping_in(embedded)
                torch.testing.assert_close(out, projected, atol=0, rtol=0)
        assert torch.equal(model(**inputs).last_hidden_state, eval_out)
    assert len(kept_counts) > 2 and max(kept_counts) <= 6


# --- early exit (PABEE) ----------------------------------------------------------------------------------------


def _per_application_logits(model, inputs):
    """Each application's exit-classifier logits, computed by hand from the hidden states."""
    albert = model.albert
    with torch.no_grad():
        states = albert(**inputs, output_hidden_states=True).hidden_states[1:]
    pooled = [albert.pooler_activation(albert.pooler(state[:, 0])) for state in states]
    return [model.exit_classifiers(p, depth) for depth, p in enumerate(pooled[:-1])] + [model.classifier(pooled[-1])]


def test_patience_at_least_the_depth_gives_the_full_models_final_classifier_logits():
    model = build(early_exit_classifiers=True)
    inputs = batch()
    with torch.no_grad():
        full = model(**inputs)
        model.config.early_exit_patience = 6
        patient = model(**inputs)
    assert torch.equal(full.exit_layers, torch.full((5,), 6))
    torch.testing.assert_close(patient.logits, full.logits, atol=0, rtol=0)
    torch.testing.assert_close(full.logits, _per_application_logits(model, inputs)[-1], atol=1e-6, rtol=1e-6)
    assert torch.equal(patient.exit_layers, full.exit_layers)


@pytest.mark.parametrize(
    "flag", ["none", "residual_attention", "depth_weighted_average", "regression", "multi_label"]
)
def test_batched_early_exit_equals_running_each_example_alone(flag):
    overrides = {"early_exit_classifiers": True, "early_exit_patience": 1}
    if flag == "regression":
        overrides.update(num_labels=1, early_exit_threshold=0.02)
    elif flag == "multi_label":
        overrides.update(num_labels=3, problem_type="multi_label_classification")
    elif flag != "none":
        overrides[flag] = True
    model = build(seed=11, **overrides)
    if flag == "depth_weighted_average":
        with torch.no_grad():
            model.albert.encoder.depth_weights.weight.normal_(0.3, 0.2)
    inputs = batch(rows=8, length=12)
    with torch.no_grad():
        batched = model(**inputs)
        for row in range(8):
            keep = inputs["attention_mask"][row].bool()
            alone = model(input_ids=inputs["input_ids"][row, keep][None])
            assert alone.exit_layers.item() == batched.exit_layers[row].item(), row
            torch.testing.assert_close(alone.logits[0], batched.logits[row], atol=1e-5, rtol=1e-5)
    assert len(set(batched.exit_layers.tolist())) > 1, "the batch must mix rows of different exit depths"


def test_early_exit_follows_pabee_patience_rule():
    model = build(seed=11, early_exit_classifiers=True)
    inputs = batch(rows=8, length=12)
    per_application = _per_application_logits(model, inputs)
    predictions = torch.stack([logits.argmax(-1) for logits in per_application])  # (L, B)
    for patience in (1, 2, 3):
        model.config.early_exit_patience = patience
        with torch.no_grad():
            out = model(**inputs)
        for row in range(8):
            streak, depth = 0, 6
            for i in range(1, 6):
                streak = streak + 1 if predictions[i, row] == predictions[i - 1, row] else 0
                if streak >= patience:
                    depth = i + 1
                    break
            assert out.exit_layers[row].item() == depth
            torch.testing.assert_close(out.logits[row], per_application[depth - 1][row], atol=1e-5, rtol=1e-5)


def test_fixed_depth_uses_that_applications_exit_classifier():
    model = build(early_exit_classifiers=True)
    inputs = batch()
    per_application = _per_application_logits(model, inputs)
    with torch.no_grad():
        for k in (1, 4):
            out = model(**inputs, num_layers=k)
            torch.testing.assert_close(out.logits, per_application[k - 1], atol=1e-6, rtol=1e-6)
            assert torch.equal(out.exit_layers, torch.full((5,), k))


def test_training_loss_is_pabees_depth_weighted_average():
    model = build(early_exit_classifiers=True)
    inputs, labels = batch(), torch.tensor([0, 1, 1, 0, 1])
    per_application = _per_application_logits(model, inputs)
    weights = torch.arange(1, 7, dtype=torch.float32)
    expected = sum(w * F.cross_entropy(logits, labels) for w, logits in zip(weights, per_application)) / weights.sum()
    model.train()
    out = model(**inputs, labels=labels)
    torch.testing.assert_close(out.loss, expected, atol=1e-6, rtol=1e-5)
    model.eval()
    with torch.no_grad():  # evaluation scores the logits it returns
        torch.testing.assert_close(model(**inputs, labels=labels).loss, F.cross_entropy(per_application[-1], labels))


def test_without_early_exit_the_output_has_no_exit_layers():
    out = build()(**batch())
    assert out.exit_layers is None
    assert len(build()(**batch(), return_dict=False)) == 1


# --- save/load, remote code, pipeline --------------------------------------------------------------------------

ALL_FLAGS = dict(residual_attention=True, depth_weighted_average=True, layerdrop=0.2, early_exit_classifiers=True,
                 early_exit_patience=2, early_exit_threshold=0.1)


def test_every_flag_round_trips_through_save_load_and_remote_code(tmp_path):
    model = build(seed=11, **ALL_FLAGS)
    with torch.no_grad():
        model.albert.encoder.depth_weights.weight.normal_(0.3, 0.2)
    model.save_pretrained(tmp_path)
    inputs = batch(rows=8, length=12)
    with torch.no_grad():
        expected = model(**inputs)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    for name, value in ALL_FLAGS.items():
        assert getattr(reloaded.config, name) == value, name
    with torch.no_grad():
        again = reloaded(**inputs)
    torch.testing.assert_close(again.logits, expected.logits, atol=0, rtol=0)
    assert torch.equal(again.exit_layers, expected.exit_layers)
    out = run_without_package(
        f"""
        import json, torch
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()
        inputs = {{"input_ids": torch.tensor({inputs["input_ids"].tolist()}),
                  "attention_mask": torch.tensor({inputs["attention_mask"].tolist()})}}
        with torch.no_grad():
            out = model(**inputs)
        flags = {{name: getattr(model.config, name) for name in {list(ALL_FLAGS)!r}}}
        print(json.dumps({{"module": type(model).__module__, "flags": flags, "logits": out.logits.tolist(),
                          "exit_layers": out.exit_layers.tolist()}}))
        """
    ).stdout
    payload = json.loads(out.strip().splitlines()[-1])
    assert not payload["module"].startswith("albert_recipes")
    assert payload["flags"] == ALL_FLAGS
    torch.testing.assert_close(torch.tensor(payload["logits"]), expected.logits, atol=1e-6, rtol=0)
    assert payload["exit_layers"] == expected.exit_layers.tolist()


def test_text_classification_pipeline_with_early_exit(tiny_tokenizer):
    model = AutoModelForSequenceClassification.from_config(
        config(vocab_size=len(tiny_tokenizer), pad_token_id=tiny_tokenizer.pad_token_id, early_exit_classifiers=True,
               early_exit_patience=1, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    ).eval()
    texts = ["A fine function.", "An error is raised when the value is wrong.", "Returns None."]
    classify = pipeline("text-classification", model=model, tokenizer=tiny_tokenizer, device="cpu")
    results = classify(texts)
    encoded = tiny_tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**encoded)
    probabilities = out.logits.softmax(-1)
    for result, row in zip(results, probabilities):
        assert result["label"] == model.config.id2label[int(row.argmax())]
        assert abs(result["score"] - float(row.max())) < 1e-5


def test_lora_trains_and_saves_the_exit_classifiers_with_the_adapter(tmp_path):
    from peft import AutoPeftModelForSequenceClassification, get_peft_model

    from albert_recipes.lora import lora_config

    base = build(seed=11, early_exit_classifiers=True, early_exit_patience=1)
    base.save_pretrained(tmp_path / "base")
    model = get_peft_model(base, lora_config("SEQ_CLS", r=4, modules_to_save=["exit_classifiers"]))
    before = model.base_model.model.exit_classifiers.weight.detach().clone()
    _train(model, steps=3)
    model.eval()
    trained = model.base_model.model.exit_classifiers.weight.detach().clone()
    assert not torch.equal(before, trained), "the exit classifiers must train with the adapter"
    model.peft_config["default"].base_model_name_or_path = str(tmp_path / "base")
    model.save_pretrained(tmp_path / "adapter")
    inputs = batch(rows=8, length=12)
    with torch.no_grad():
        expected = model(**inputs)
    reloaded = AutoPeftModelForSequenceClassification.from_pretrained(tmp_path / "adapter").eval()
    with torch.no_grad():
        again = reloaded(**inputs)
    torch.testing.assert_close(again.logits, expected.logits, atol=1e-6, rtol=1e-6)
    assert torch.equal(again.exit_layers, expected.exit_layers)


# --- the recipes ------------------------------------------------------------------------------------------------


def test_lora_recipe_trains_and_saves_the_exit_classifiers(tmp_path, tiny_tokenizer):
    """`model.config_overrides={early_exit_classifiers: true}`: the recipe adds the exit classifiers to PEFT's
    modules_to_save, so they train in full and are saved with the adapter; adapter and merged model exit alike."""
    from accelerate.state import AcceleratorState, GradientState
    from peft import AutoPeftModelForSequenceClassification
    from safetensors.torch import load_file

    from albert_recipes.cli import build_config
    from recipe_runner import ROOT, load_recipe

    recipe = load_recipe("finetune_lora")
    overrides = ("model.config_overrides={embedding_size: 16, hidden_size: 32, num_attention_heads: 2, "
                 "intermediate_size: 64, num_hidden_layers: 4, early_exit_classifiers: true, layerdrop: 0.1}")
    cfg = build_config(recipe.FinetuneLoraConfig, ROOT / "recipes/configs/finetune_lora/debug.yaml", [
        f"output_dir={tmp_path / 'out'}", f"model.tokenizer_path={tiny_tokenizer.name_or_path}", overrides,
        "data.synthetic_examples=64", "train.epochs=1", "train.report_to=none"])
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        recipe.main(cfg)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    out = Path(cfg.output_dir)
    adapter_weights = load_file(out / "adapter" / "adapter_model.safetensors")
    base_weights = load_file(out / "base" / "model.safetensors")
    (key,) = [k for k in adapter_weights if "exit_classifiers.weight" in k]
    assert adapter_weights[key].shape == (3, 2, 32)
    assert not torch.equal(adapter_weights[key], base_weights["exit_classifiers.weight"]), "exit heads not trained"

    adapter = AutoPeftModelForSequenceClassification.from_pretrained(out / "adapter").eval()
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged").eval()
    assert merged.config.early_exit_classifiers and merged.config.layerdrop == 0.1
    texts = ["a fine and lovely day", "the worst, dull and grim", "it is what it is", "good"]
    inputs = tiny_tokenizer(texts, padding=True, return_tensors="pt")
    for model in (adapter, merged):
        model.config.early_exit_patience = 1
    with torch.no_grad():
        from_adapter, from_merged = adapter(**inputs), merged(**inputs)
    torch.testing.assert_close(from_merged.logits, from_adapter.logits, rtol=1e-4, atol=1e-5)
    assert torch.equal(from_merged.exit_layers, from_adapter.exit_layers)
    assert from_merged.exit_layers.min() >= 2


def test_pretrain_recipe_reaches_the_flags_and_checks_layerdrop():
    from albert_recipes.cli import ConfigError, build_config
    from recipe_runner import load_recipe

    recipe = load_recipe("pretrain")
    cfg = build_config(recipe.PretrainConfig, None, ["model.residual_attention=true",
                                                     "model.depth_weighted_average=true", "model.layerdrop=0.2"])
    config = recipe.model_config(cfg.model, cfg.data.max_seq_length)
    assert config.residual_attention and config.depth_weighted_average and config.layerdrop == 0.2
    with pytest.raises(ConfigError, match=r"model.layerdrop=1.0 must be in \[0, 1\)"):
        build_config(recipe.PretrainConfig, None, ["model.layerdrop=1.0"])


def test_lora_recipe_adds_exit_classifiers_to_a_pretrained_model(tmp_path, tiny_tokenizer):
    """Over a pretrained `model.name_or_path`, config_overrides set only the extension fields (sizes come from the
    checkpoint): early-exit heads are added, trained with the adapter and saved."""
    from accelerate.state import AcceleratorState, GradientState
    from peft import AutoPeftModelForSequenceClassification

    from albert_recipes.cli import build_config
    from recipe_runner import ROOT, load_recipe

    pretrained = tmp_path / "pretrained"
    build("AlbertRecipesForMaskedLM", seed=3, vocab_size=len(tiny_tokenizer),
          pad_token_id=tiny_tokenizer.pad_token_id).save_pretrained(pretrained)
    tiny_tokenizer.save_pretrained(pretrained)
    recipe = load_recipe("finetune_lora")
    cfg = build_config(recipe.FinetuneLoraConfig, ROOT / "recipes/configs/finetune_lora/debug.yaml", [
        f"output_dir={tmp_path / 'out'}", "model.preset=", f"model.name_or_path={pretrained}",
        "model.config_overrides={hidden_size: 64, early_exit_classifiers: true, early_exit_patience: 1}",
        "data.synthetic_examples=32", "train.epochs=1", "train.report_to=none", "finetune.save_merged=false"])
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        recipe.main(cfg)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    adapter = AutoPeftModelForSequenceClassification.from_pretrained(tmp_path / "out" / "adapter").eval()
    config = adapter.config
    assert config.hidden_size == SMALL["hidden_size"]  # the checkpoint's size, not the override's
    assert config.early_exit_classifiers and config.early_exit_patience == 1
    with torch.no_grad():
        out = adapter(**tiny_tokenizer(["a fine day", "dull and grim"], padding=True, return_tensors="pt"))
    assert out.exit_layers.min() >= 2  # patience 1: the earliest exit is after application 2

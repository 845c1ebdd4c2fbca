"""Model tests in the style of transformers' ModelTester: shapes per head, attention backends, activation
checkpointing, and bit-for-bit compatibility with the stock `transformers` ALBERT."""

from __future__ import annotations

import importlib

import pytest
import torch
import transformers
from transformers import AlbertConfig

import albert_recipes
from albert_recipes import AlbertRecipesConfig

HEADS = {
    # ours -> stock
    "AlbertRecipesModel": "AlbertModel",
    "AlbertRecipesForPreTraining": "AlbertForPreTraining",
    "AlbertRecipesForMaskedLM": "AlbertForMaskedLM",
    "AlbertRecipesForSequenceClassification": "AlbertForSequenceClassification",
    "AlbertRecipesForTokenClassification": "AlbertForTokenClassification",
    "AlbertRecipesForQuestionAnswering": "AlbertForQuestionAnswering",
    "AlbertRecipesForMultipleChoice": "AlbertForMultipleChoice",
}


class AlbertRecipesModelTester:
    """Builds small random configs and inputs, and checks each head's outputs."""

    def __init__(self, batch_size=3, seq_length=9, num_choices=4, num_labels=3, **config_overrides):
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.num_choices = num_choices
        self.num_labels = num_labels
        self.config_kwargs = dict(
            vocab_size=99,
            embedding_size=16,
            hidden_size=36,
            num_hidden_layers=4,
            num_hidden_groups=2,
            inner_group_num=2,
            num_attention_heads=6,
            intermediate_size=37,
            max_position_embeddings=32,
            type_vocab_size=2,
            classifier_dropout_prob=0.0,
        )
        self.config_kwargs.update(config_overrides)

    def get_config(self, **extra) -> AlbertRecipesConfig:
        return AlbertRecipesConfig(**{**self.config_kwargs, "num_labels": self.num_labels, **extra})

    def num_labels_for(self, head: str) -> int:
        # the stock SOP and QA heads size themselves by num_labels, so compare at its default there
        return 2 if head in ("AlbertRecipesForPreTraining", "AlbertRecipesForQuestionAnswering") else self.num_labels

    def prepare_inputs(self, generator: torch.Generator) -> dict[str, torch.Tensor]:
        shape = (self.batch_size, self.seq_length)
        input_ids = torch.randint(5, self.config_kwargs["vocab_size"], shape, generator=generator)
        attention_mask = torch.ones(shape, dtype=torch.long)
        attention_mask[0, -3:] = 0  # one padded row, so masking is exercised
        token_type_ids = torch.zeros(shape, dtype=torch.long)
        token_type_ids[:, self.seq_length // 2 :] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}

    def inputs_for(self, head: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if head == "AlbertRecipesForMultipleChoice":  # (B, T) -> (B, C, T)
            return {k: v[:, None].expand(-1, self.num_choices, -1).contiguous() for k, v in inputs.items()}
        return inputs

    def labels_for(self, head: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        b, t = self.batch_size, self.seq_length
        vocab = self.config_kwargs["vocab_size"]
        if head == "AlbertRecipesForPreTraining":
            labels = torch.randint(0, vocab, (b, t), generator=generator)
            labels[:, ::2] = -100
            return {"labels": labels, "sentence_order_label": torch.randint(0, 2, (b,), generator=generator)}
        if head == "AlbertRecipesForMaskedLM":
            return {"labels": torch.randint(0, vocab, (b, t), generator=generator)}
        if head == "AlbertRecipesForSequenceClassification":
            return {"labels": torch.randint(0, self.num_labels, (b,), generator=generator)}
        if head == "AlbertRecipesForTokenClassification":
            return {"labels": torch.randint(0, self.num_labels, (b, t), generator=generator)}
        if head == "AlbertRecipesForQuestionAnswering":
            return {
                "start_positions": torch.randint(0, t, (b,), generator=generator),
                "end_positions": torch.randint(0, t, (b,), generator=generator),
            }
        if head == "AlbertRecipesForMultipleChoice":
            return {"labels": torch.randint(0, self.num_choices, (b,), generator=generator)}
        return {}

    def expected_shapes(self, head: str) -> dict[str, tuple[int, ...]]:
        b, t, h = self.batch_size, self.seq_length, self.config_kwargs["hidden_size"]
        vocab = self.config_kwargs["vocab_size"]
        return {
            "AlbertRecipesModel": {"last_hidden_state": (b, t, h), "pooler_output": (b, h)},
            "AlbertRecipesForPreTraining": {"prediction_logits": (b, t, vocab), "sop_logits": (b, self.num_labels)},
            "AlbertRecipesForMaskedLM": {"logits": (b, t, vocab)},
            "AlbertRecipesForSequenceClassification": {"logits": (b, self.num_labels)},
            "AlbertRecipesForTokenClassification": {"logits": (b, t, self.num_labels)},
            "AlbertRecipesForQuestionAnswering": {"start_logits": (b, t), "end_logits": (b, t)},
            "AlbertRecipesForMultipleChoice": {"logits": (b, self.num_choices)},
        }[head]


CONFIG_VARIANTS = [
    pytest.param({}, id="groups2-inner2"),
    pytest.param({"num_hidden_groups": 1, "inner_group_num": 1}, id="fully-shared"),
    pytest.param({"num_hidden_layers": 6, "num_hidden_groups": 3, "inner_group_num": 1}, id="groups3"),
]


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.mark.parametrize("head", list(HEADS))
def test_output_shapes_and_loss(head, generator):
    tester = AlbertRecipesModelTester()
    model = getattr(albert_recipes, head)(tester.get_config()).eval()
    inputs = tester.inputs_for(head, tester.prepare_inputs(generator))
    with torch.no_grad():
        outputs = model(**inputs, **tester.labels_for(head, generator))
    for name, shape in tester.expected_shapes(head).items():
        assert tuple(outputs[name].shape) == shape, name
    if head != "AlbertRecipesModel":
        assert outputs.loss is not None and torch.isfinite(outputs.loss)


@pytest.mark.parametrize("head", list(HEADS))
def test_hidden_states_attentions_and_tuples(head, generator):
    tester = AlbertRecipesModelTester()
    config = tester.get_config(attn_implementation="eager")
    model = getattr(albert_recipes, head)(config).eval()
    inputs = tester.inputs_for(head, tester.prepare_inputs(generator))
    with torch.no_grad():
        outputs = model(**inputs, output_hidden_states=True, output_attentions=True)
        as_tuple = model(**inputs, output_hidden_states=True, return_dict=False)
    applications = config.num_hidden_layers * config.inner_group_num
    assert len(outputs.hidden_states) == applications + 1  # the projected embeddings, then every layer
    assert len(outputs.attentions) == applications
    rows = tester.batch_size * (tester.num_choices if head == "AlbertRecipesForMultipleChoice" else 1)
    heads, t = config.num_attention_heads, tester.seq_length
    assert tuple(outputs.attentions[0].shape) == (rows, heads, t, t)
    # padded keys get no attention
    assert outputs.attentions[0][0, :, :, -3:].abs().max() == 0
    assert isinstance(as_tuple, tuple)
    first = next(v for v in outputs.values() if isinstance(v, torch.Tensor))
    torch.testing.assert_close(as_tuple[0], first)


def test_sdpa_matches_eager(generator):
    tester = AlbertRecipesModelTester()
    eager = albert_recipes.AlbertRecipesForPreTraining(tester.get_config(attn_implementation="eager")).eval()
    sdpa = albert_recipes.AlbertRecipesForPreTraining(tester.get_config(attn_implementation="sdpa")).eval()
    sdpa.load_state_dict(eager.state_dict())
    assert sdpa.config._attn_implementation == "sdpa"
    inputs = tester.prepare_inputs(generator)
    with torch.no_grad():
        a, b = eager(**inputs), sdpa(**inputs)
    torch.testing.assert_close(a.prediction_logits, b.prediction_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.sop_logits, b.sop_logits, atol=1e-5, rtol=1e-5)


def test_activation_checkpointing_gives_the_same_gradients(generator):
    tester = AlbertRecipesModelTester()
    model = albert_recipes.AlbertRecipesForPreTraining(tester.get_config())
    model.train()
    inputs = tester.prepare_inputs(generator)
    labels = tester.labels_for("AlbertRecipesForPreTraining", generator)
    # a submodule's hook: the checkpointed layer's own hooks stay outside the recomputation
    attention = model.albert.encoder.albert_layer_groups[0].albert_layers[0].attention
    calls = []
    attention.register_forward_hook(lambda *_: calls.append(1))

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad()
        calls.clear()
        model(**inputs, **labels).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    plain_calls = len(calls)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    checkpointed = gradients()
    assert len(calls) > plain_calls, "checkpointing must recompute the shared layer in the backward pass"
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(plain[name], checkpointed[name], atol=1e-6, rtol=1e-5, msg=name)


def test_sparse_mlm_prediction_gives_the_same_loss(generator):
    tester = AlbertRecipesModelTester()
    dense = albert_recipes.AlbertRecipesForPreTraining(tester.get_config()).eval()
    sparse = albert_recipes.AlbertRecipesForPreTraining(tester.get_config(sparse_mlm_prediction=True)).eval()
    sparse.load_state_dict(dense.state_dict())
    inputs = tester.prepare_inputs(generator)
    labels = tester.labels_for("AlbertRecipesForPreTraining", generator)
    with torch.no_grad():
        a, b = dense(**inputs, **labels), sparse(**inputs, **labels)
    selected = labels["labels"] != -100
    assert b.prediction_logits.shape == (int(selected.sum()), tester.config_kwargs["vocab_size"])
    torch.testing.assert_close(a.prediction_logits[selected], b.prediction_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-6, rtol=1e-6)


def test_position_ids_are_used(generator):
    tester = AlbertRecipesModelTester()
    model = albert_recipes.AlbertRecipesModel(tester.get_config()).eval()
    inputs = tester.prepare_inputs(generator)
    shifted = torch.arange(2, 2 + tester.seq_length)[None]
    with torch.no_grad():
        default = model(**inputs).last_hidden_state
        explicit = model(**inputs, position_ids=torch.arange(tester.seq_length)[None]).last_hidden_state
        moved = model(**inputs, position_ids=shifted).last_hidden_state
    torch.testing.assert_close(default, explicit)
    assert not torch.allclose(default, moved)


@pytest.mark.parametrize("head", ["AlbertRecipesForPreTraining", "AlbertRecipesForMaskedLM"])
def test_decoder_is_tied_only_through_tied_weights_keys(head, tmp_path):
    tester = AlbertRecipesModelTester()
    tied = getattr(albert_recipes, head)(tester.get_config())
    assert tied.get_output_embeddings().weight is tied.get_input_embeddings().weight
    assert tied.predictions.decoder.bias is tied.predictions.bias

    untied = getattr(albert_recipes, head)(tester.get_config(tie_word_embeddings=False))
    assert untied.get_output_embeddings().weight is not untied.get_input_embeddings().weight
    assert untied.predictions.decoder.bias is not untied.predictions.bias
    with torch.no_grad():  # make every tensor distinct, so a reload that drops or re-ties one shows
        for parameter in untied.parameters():
            parameter.normal_()
    untied.save_pretrained(tmp_path / "untied")
    reloaded, info = getattr(albert_recipes, head).from_pretrained(tmp_path / "untied", output_loading_info=True)
    assert info["missing_keys"] == set() or info["missing_keys"] == []
    for name, tensor in untied.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[name], tensor, msg=name)


def test_a_checkpoint_without_the_mlm_bias_reports_it_missing(tmp_path):
    from safetensors.torch import load_file, save_file

    model = albert_recipes.AlbertRecipesForMaskedLM(AlbertRecipesModelTester().get_config())
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    assert "predictions.bias" in weights  # saved once (decoder.bias is tied to it)
    kept = {k: v for k, v in weights.items() if k not in ("predictions.bias", "predictions.decoder.bias")}
    save_file(kept, tmp_path / "model.safetensors", {"format": "pt"})
    _, info = albert_recipes.AlbertRecipesForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert "predictions.bias" in set(info["missing_keys"])


def test_set_attn_implementation_switches_the_kernel(monkeypatch, generator):
    tester = AlbertRecipesModelTester()
    model = albert_recipes.AlbertRecipesModel(tester.get_config(attn_implementation="sdpa")).eval()
    calls, eager_attention = [], albert_recipes.modeling_albert_recipes.eager_attention_forward

    def counting_eager(*args, **kwargs):
        calls.append(1)
        return eager_attention(*args, **kwargs)

    monkeypatch.setattr(albert_recipes.modeling_albert_recipes, "eager_attention_forward", counting_eager)
    inputs = tester.prepare_inputs(generator)
    with torch.no_grad():
        sdpa_out = model(**inputs).last_hidden_state
        assert calls == []
        model.set_attn_implementation("eager")
        eager_out = model(**inputs).last_hidden_state
        assert len(calls) == model.config.num_layer_applications == 8
        model.set_attn_implementation("sdpa")
        model(**inputs)
    assert len(calls) == 8
    torch.testing.assert_close(sdpa_out, eager_out, atol=1e-5, rtol=1e-5)


def test_sdpa_returns_the_attentions_it_is_asked_for(generator):
    tester = AlbertRecipesModelTester()
    eager = albert_recipes.AlbertRecipesModel(tester.get_config(attn_implementation="eager")).eval()
    sdpa = albert_recipes.AlbertRecipesModel(tester.get_config(attn_implementation="sdpa")).eval()
    sdpa.load_state_dict(eager.state_dict())
    inputs = tester.prepare_inputs(generator)
    with torch.no_grad():
        expected = eager(**inputs, output_attentions=True).attentions
        assert len(sdpa(**inputs).attentions or ()) == 0
        got = sdpa(**inputs, output_attentions=True).attentions
    assert len(got) == len(expected) == 8
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)


@pytest.mark.skipif(
    not hasattr(importlib.import_module(albert_recipes.modeling_albert_recipes.capture_outputs.__module__),
                "selected_hidden_states"),
    reason="this transformers' output recording takes output_hidden_states as a flag only (5.0 does)",
)  # fmt: skip
def test_output_hidden_states_selects_layer_applications(generator):
    # 4 layers x 2 inner layers: 8 applications, 9 hidden states; -1 is the last, not num_hidden_layers
    tester = AlbertRecipesModelTester()
    model = albert_recipes.AlbertRecipesForSequenceClassification(tester.get_config()).eval()
    inputs = tester.prepare_inputs(generator)
    with torch.no_grad():
        every = model(**inputs, output_hidden_states=True).hidden_states
        some = model(**inputs, output_hidden_states=[0, 3, -1]).hidden_states
    assert len(every) == len(some) == model.config.num_layer_applications + 1 == 9
    for index, state in enumerate(some):
        if index in (0, 3, 8):
            torch.testing.assert_close(state, every[index])
        else:
            assert state is None, index


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_a_ready_4d_mask_passes_through(attn_implementation, generator):
    tester = AlbertRecipesModelTester()
    model = albert_recipes.AlbertRecipesModel(tester.get_config(attn_implementation=attn_implementation)).eval()
    inputs = tester.prepare_inputs(generator)
    keys = inputs["attention_mask"].bool()[:, None, None, :].expand(-1, 1, tester.seq_length, -1)  # (B, 1, T, T)
    additive = torch.zeros(keys.shape).masked_fill(~keys, torch.finfo(torch.float32).min)
    with torch.no_grad():
        expected = model(**inputs).last_hidden_state
        got = model(**{**inputs, "attention_mask": additive}).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def test_value_checks_never_read_accelerator_tensors():
    # On a `meta` device every value read (`.item()`, `bool()`, `int()`) raises, like a host sync it would force on
    # an accelerator: the forward passes, so only the CPU path reads values (the CPU checks are tested below).
    tester = AlbertRecipesModelTester()
    with torch.device("meta"):
        model = albert_recipes.AlbertRecipesForSequenceClassification(tester.get_config()).eval()
        ids = torch.full((2, 5), 200, dtype=torch.long)  # out of range: a CPU tensor would be rejected
        inputs = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids), "labels": torch.tensor([0, 7])}
        if albert_recipes.modeling_albert_recipes._MASK_SKIP_IS_OPTIONAL:  # transformers 5.0's masking reads masks
            inputs["attention_mask"] = torch.ones(2, 5, dtype=torch.long)
        out = model(**inputs)
    assert out.logits.device.type == "meta" and out.logits.shape == (2, 3)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 99\)"):
        albert_recipes.AlbertRecipesForSequenceClassification(tester.get_config())(input_ids=torch.full((2, 5), 200))


def test_meta_tensors_refuse_value_reads():
    # the premise of the test above
    with pytest.raises(Exception):
        bool(torch.ones(2, device="meta").all())


# --- compatibility with the stock transformers ALBERT ----------------------------------------------------------


def _compare_outputs(stock_out, ours_out, atol=1e-5) -> None:
    for key, value in stock_out.items():
        if value is None:
            continue
        if isinstance(value, tuple):
            assert len(value) == len(ours_out[key]), key
            for a, b in zip(value, ours_out[key]):
                torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=key)
        else:
            torch.testing.assert_close(value, ours_out[key], atol=atol, rtol=0, msg=key)


@pytest.mark.parametrize("overrides", CONFIG_VARIANTS)
@pytest.mark.parametrize("head", list(HEADS))
def test_stock_checkpoint_loads_into_ours_with_identical_outputs(head, overrides, tmp_path, generator):
    tester = AlbertRecipesModelTester(**overrides)
    stock_config = AlbertConfig(**tester.config_kwargs, num_labels=tester.num_labels_for(head))
    torch.manual_seed(1)
    stock = getattr(transformers, HEADS[head])(stock_config).eval()
    stock.save_pretrained(tmp_path)
    ours = getattr(albert_recipes, head).from_pretrained(tmp_path).eval()

    assert set(ours.state_dict()) == set(stock.state_dict())
    for name, tensor in stock.state_dict().items():
        assert torch.equal(tensor, ours.state_dict()[name]), name
    inputs = tester.inputs_for(head, tester.prepare_inputs(generator))
    labels = tester.labels_for(head, generator)
    with torch.no_grad():
        stock_out = stock(**inputs, **labels, output_hidden_states=True)
        ours_out = ours(**inputs, **labels, output_hidden_states=True)
    _compare_outputs(stock_out, ours_out)


@pytest.mark.parametrize("num_labels", [1, 3, 5])
def test_stock_pretraining_checkpoint_with_any_num_labels_loads_into_ours(num_labels, tmp_path, generator):
    # the stock SOP head is num_labels wide; ours too, so such a checkpoint loads instead of failing on a shape
    tester = AlbertRecipesModelTester()
    torch.manual_seed(3)
    stock = transformers.AlbertForPreTraining(AlbertConfig(**tester.config_kwargs, num_labels=num_labels)).eval()
    stock.save_pretrained(tmp_path)
    ours, info = albert_recipes.AlbertRecipesForPreTraining.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info[kind] for kind in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    inputs = tester.prepare_inputs(generator)
    with torch.no_grad():
        stock_out = stock(**inputs, output_hidden_states=True)
        ours_out = ours.eval()(**inputs, output_hidden_states=True)
    assert ours_out.sop_logits.shape == (tester.batch_size, num_labels)
    _compare_outputs(stock_out, ours_out)


@pytest.mark.parametrize("head", list(HEADS))
def test_our_checkpoint_loads_into_stock_with_identical_outputs(head, tmp_path, generator):
    tester = AlbertRecipesModelTester()
    torch.manual_seed(2)
    ours = getattr(albert_recipes, head)(tester.get_config(num_labels=tester.num_labels_for(head))).eval()
    ours.save_pretrained(tmp_path)
    stock = getattr(transformers, HEADS[head]).from_pretrained(tmp_path).eval()
    inputs = tester.inputs_for(head, tester.prepare_inputs(generator))
    with torch.no_grad():
        _compare_outputs(stock(**inputs), ours(**inputs))


def test_stock_folder_loads_through_our_config(tmp_path):
    stock_config = AlbertConfig(vocab_size=50, hidden_size=24, num_attention_heads=4, intermediate_size=30)
    stock_config.save_pretrained(tmp_path)
    config = AlbertRecipesConfig.from_pretrained(tmp_path)
    assert config.model_type == "albert_recipes"
    assert (config.vocab_size, config.hidden_size, config.intermediate_size) == (50, 24, 30)


# --- config ---------------------------------------------------------------------------------------------------


def test_config_defaults_match_the_stock_config():
    ours, stock = AlbertRecipesConfig().to_dict(), AlbertConfig().to_dict()
    for key in (
        "vocab_size",
        "embedding_size",
        "hidden_size",
        "num_hidden_layers",
        "num_hidden_groups",
        "num_attention_heads",
        "intermediate_size",
        "inner_group_num",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "max_position_embeddings",
        "type_vocab_size",
        "initializer_range",
        "layer_norm_eps",
        "classifier_dropout_prob",
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "tie_word_embeddings",
    ):
        assert ours[key] == stock[key], key


@pytest.mark.parametrize(
    "name, hidden, layers, heads, dropout",
    [("base", 768, 12, 12, 0.0), ("large", 1024, 24, 16, 0.0), ("xxlarge", 4096, 12, 64, 0.0), ("base-v1", 768, 12, 12, 0.1)],
)
def test_presets(name, hidden, layers, heads, dropout):
    config = AlbertRecipesConfig.from_preset(name, vocab_size=1000)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (hidden, layers, heads)
    assert config.hidden_dropout_prob == dropout and config.embedding_size == 128 and config.vocab_size == 1000


def test_albert_base_has_the_papers_parameter_count():
    # Table 1 of the paper: ALBERT-base has 12M parameters (vs 108M for BERT-base)
    with torch.device("meta"):
        model = albert_recipes.AlbertRecipesModel(AlbertRecipesConfig.from_preset("base"))
    total = sum(p.numel() for p in model.parameters())
    assert 11e6 < total < 13e6, total


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "divisible by num_attention_heads"),
        ({"num_hidden_layers": 5, "num_hidden_groups": 2}, "divisible by num_hidden_groups"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer"),
        ({"vocab_size": -3}, "vocab_size must be a positive integer"),
        ({"inner_group_num": 0}, "inner_group_num must be a positive integer"),
        ({"hidden_act": "swishy"}, "hidden_act 'swishy' is unknown"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be in"),
        ({"pad_token_id": 40000}, "pad_token_id"),
    ],
)
def test_config_validation(kwargs, message):
    # like the stock AlbertConfig, a config accepts any values when created or edited field by field...
    config = AlbertRecipesConfig(**kwargs)
    AlbertRecipesConfig().update(kwargs)
    assert config.to_dict()[next(iter(kwargs))] == next(iter(kwargs.values()))
    # ...and the clear error comes where a model is built from it, or a preset is made
    for build in (albert_recipes.AlbertRecipesModel, albert_recipes.AlbertRecipesForMaskedLM):
        with pytest.raises(ValueError, match=message):
            build(config)
    with pytest.raises(ValueError, match=message):
        AlbertRecipesConfig.from_preset("tiny", **kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        AlbertRecipesConfig.from_preset("huge")


# --- bad inputs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda: {"input_ids": torch.tensor([[5, 99]])}, r"input_ids must lie in \[0, 99\)"),
        (lambda: {"input_ids": torch.tensor([[-1, 5]])}, r"input_ids must lie in \[0, 99\)"),
        (lambda: {"input_ids": torch.ones(1, 40, dtype=torch.long)}, "exceeds max_position_embeddings=32"),
        (
            lambda: {"input_ids": torch.ones(2, 5, dtype=torch.long), "attention_mask": torch.ones(2, 4)},
            "attention_mask must have the shape",
        ),
        (
            lambda: {"input_ids": torch.ones(2, 5, dtype=torch.long), "token_type_ids": torch.full((2, 5), 2)},
            r"token_type_ids must lie in \[0, 2\)",
        ),
        (lambda: {"input_ids": torch.ones(5, dtype=torch.long)}, r"input_ids must be \(batch, seq_len\)"),
        (lambda: {}, "exactly one of input_ids or inputs_embeds"),
    ],
)
def test_bad_inputs_raise_a_clear_error(make_inputs, message):
    model = albert_recipes.AlbertRecipesModel(AlbertRecipesModelTester().get_config()).eval()
    with pytest.raises(ValueError, match=message):
        model(**make_inputs())


def test_labels_outside_num_labels_raise():
    tester = AlbertRecipesModelTester()
    model = albert_recipes.AlbertRecipesForSequenceClassification(tester.get_config()).eval()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_labels=3\)"):
        model(input_ids=torch.ones(2, 4, dtype=torch.long), labels=torch.tensor([0, 3]))


@pytest.mark.parametrize(
    "problem_type, labels",
    [
        ("regression", torch.tensor([0.5, -1.0, 2.0])),
        ("single_label_classification", torch.tensor([0, 2, 1])),
        ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])),
    ],
)
def test_sequence_classification_problem_types_match_stock(problem_type, labels, tmp_path, generator):
    tester = AlbertRecipesModelTester()
    num_labels = 1 if problem_type == "regression" else 3
    stock = transformers.AlbertForSequenceClassification(
        AlbertConfig(**tester.config_kwargs, num_labels=num_labels)
    ).eval()
    stock.save_pretrained(tmp_path)
    ours = albert_recipes.AlbertRecipesForSequenceClassification.from_pretrained(tmp_path).eval()
    inputs = tester.prepare_inputs(generator)
    with torch.no_grad():
        a, b = stock(**inputs, labels=labels), ours(**inputs, labels=labels)
    assert ours.config.problem_type == problem_type
    torch.testing.assert_close(a.loss, b.loss, atol=1e-6, rtol=0)

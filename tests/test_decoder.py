"""ALBERT as a decoder (our extension): causal self-attention, cross-attention shared across depth, a KV cache indexed
by the application index, `AlbertRecipesForCausalLM` in `EncoderDecoderModel` with generation, warm start from an
encoder checkpoint, encoder/decoder tying, save/load and remote code."""

import logging

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BertConfig,
    BertLMHeadModel,
    BertModel,
    EncoderDecoderModel,
)

from albert_recipes import (
    AlbertRecipesConfig,
    AlbertRecipesForCausalLM,
    AlbertRecipesForPreTraining,
    AlbertRecipesModel,
    seq2seq,
)
from without_package import run_without_package

SMALL = dict(vocab_size=40, embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=24)
START, END, PAD = 2, 3, 0


def _config(**overrides) -> AlbertRecipesConfig:
    return AlbertRecipesConfig(**{**SMALL, **overrides})


def _seq2seq(attn: str = "sdpa", **overrides) -> EncoderDecoderModel:
    torch.manual_seed(0)
    model = seq2seq.random_init(_config(**overrides))
    seq2seq.set_special_tokens(model, START, END, PAD)
    model.set_attn_implementation(attn)
    return model.eval()


def _source(batch: int = 3, length: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 40, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[-1, length - 2 :] = 0  # one padded source
    return ids.masked_fill(mask == 0, PAD), mask


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_causal_mask_hides_later_decoder_tokens(attn):
    model = _seq2seq(attn, inner_group_num=2)
    ids, mask = _source()
    decoder_ids, before = _assert_causal(model)
    # and the encoder stays bidirectional: changing the last source token changes every decoder position
    other = ids.clone()
    other[0, -1] = (other[0, -1] + 1) % 35 + 5
    with torch.no_grad():
        moved = model(input_ids=other, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    assert (moved[0, 0] - before[0, 0]).abs().max() > 1e-4
    # the weights (eager kernel under sdpa too, with the causal mask materialised): one per layer application
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids, output_attentions=True)
    assert len(out.decoder_attentions) == len(out.cross_attentions) == len(out.encoder_attentions) == 4
    self_weights, cross_weights = out.decoder_attentions[-1], out.cross_attentions[-1]
    assert self_weights.shape == (3, 4, 6, 6) and cross_weights.shape == (3, 4, 6, 7)
    assert self_weights.triu(diagonal=1).abs().max() == 0  # nothing attends to later tokens
    assert cross_weights[-1, :, :, -2:].abs().max() == 0  # nor to the padded source tokens
    torch.testing.assert_close(cross_weights.sum(-1), torch.ones(3, 4, 6))


@pytest.mark.parametrize("groups", [{"inner_group_num": 2}, {"num_hidden_groups": 2}])
def test_cached_greedy_generation_equals_uncached(groups):
    # inner_group_num=2 applies 2 distinct layers per depth: 4 applications, so 4 cache slots for 2 "layers"
    sequences = _assert_cached_equals_uncached(_seq2seq(**groups), max_new_tokens=10)
    assert sequences.shape[1] > 5 and (sequences[:, 0] == START).all()


def _assert_causal(model: EncoderDecoderModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Changing decoder tokens 4 and 5 leaves the logits of positions 0-3 exactly as they were, and changes 4-5."""
    ids, mask = _source()
    decoder_ids = torch.randint(5, 40, (3, 6), generator=torch.Generator().manual_seed(2))
    changed = decoder_ids.clone()
    changed[:, 4:] = (changed[:, 4:] + 7) % 35 + 5
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
        after = model(input_ids=ids, attention_mask=mask, decoder_input_ids=changed).logits
    torch.testing.assert_close(after[:, :4], before[:, :4], rtol=0, atol=1e-6)
    assert (after[:, 4:] - before[:, 4:]).abs().max() > 1e-3  # the changed positions do see their own tokens
    return decoder_ids, before


def _assert_cached_equals_uncached(model: EncoderDecoderModel, max_new_tokens: int) -> torch.Tensor:
    """Greedy generation with and without the key/value cache: the same tokens and the same scores."""
    ids, mask = _source()
    runs = [model.generate(ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False, use_cache=cache,
                           output_scores=True, return_dict_in_generate=True) for cache in (True, False)]
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    for cached, uncached in zip(runs[0].scores, runs[1].scores):
        torch.testing.assert_close(cached, uncached, rtol=0, atol=1e-5)
    return runs[0].sequences


def test_beam_search_and_sampling():
    model = _seq2seq()
    ids, mask = _source()
    beams = [model.generate(ids, attention_mask=mask, max_new_tokens=8, num_beams=3, num_return_sequences=2,
                            use_cache=cache) for cache in (True, False)]
    assert beams[0].shape[0] == 6 and torch.equal(beams[0], beams[1])
    torch.manual_seed(5)
    first = model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=True, top_k=10)
    torch.manual_seed(5)
    assert torch.equal(first, model.generate(ids, attention_mask=mask, max_new_tokens=8, do_sample=True, top_k=10))


def test_standalone_causal_lm_generates_with_cache():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(is_decoder=True)).eval()
    assert isinstance(model, AlbertRecipesForCausalLM)
    prompt = torch.randint(5, 40, (2, 4))
    cached = model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=PAD)
    assert torch.equal(cached, model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=PAD,
                                              use_cache=False))
    out = model(prompt, labels=prompt)  # next-token loss: labels are shifted inside
    logits = model(prompt).logits
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 40), prompt[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)


def test_warm_start_from_an_encoder_checkpoint(tmp_path):
    torch.manual_seed(0)
    pretrained = AlbertRecipesForPreTraining(_config())
    pretrained.save_pretrained(tmp_path / "pretrained")
    model = seq2seq.warm_started(tmp_path / "pretrained")
    assert isinstance(model.encoder, AlbertRecipesModel) and isinstance(model.decoder, AlbertRecipesForCausalLM)
    assert model.decoder.config.is_decoder and model.decoder.config.add_cross_attention
    assert not model.encoder.config.is_decoder
    source = pretrained.state_dict()
    decoder = model.decoder.state_dict()
    for key, value in source.items():
        if key.startswith(("albert.", "predictions.")) and "pooler" not in key:
            assert torch.equal(decoder[key], value), key  # backbone and LM head (ALBERT's MLM head) warm-started
    cross = {k: v for k, v in decoder.items() if "crossattention" in k}
    assert cross and not any(k in source for k in cross)  # cross-attention: new, one set shared across depth
    assert len(cross) == 10  # query/key/value/dense weights+biases and LayerNorm of the single shared layer
    assert cross["albert.encoder.albert_layer_groups.0.albert_layers.0.crossattention.LayerNorm.weight"].eq(1).all()
    assert cross["albert.encoder.albert_layer_groups.0.albert_layers.0.crossattention.query.weight"].std() < 0.05
    # the encoder computes exactly what the checkpoint's encoder computed
    ids = torch.randint(5, 40, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(ids).last_hidden_state, pretrained.albert(ids).last_hidden_state,
                                   rtol=0, atol=0)


def test_stock_bert_on_either_side():
    torch.manual_seed(0)
    bert = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    ids, mask = _source()
    labels = torch.randint(5, 40, (3, 4))
    for encoder, decoder in (
        (AlbertRecipesModel(_config()), BertLMHeadModel(BertConfig(**bert, is_decoder=True, add_cross_attention=True))),
        (BertModel(BertConfig(**bert)), AlbertRecipesForCausalLM(seq2seq.decoder_config(_config()))),
        (AlbertRecipesModel(_config(hidden_size=48)), AlbertRecipesForCausalLM(seq2seq.decoder_config(_config()))),
    ):
        model = EncoderDecoderModel(encoder=encoder, decoder=decoder).eval()
        seq2seq.set_special_tokens(model, START, END, PAD)
        assert torch.isfinite(model(input_ids=ids, attention_mask=mask, labels=labels).loss)
        assert model.generate(ids, attention_mask=mask, max_new_tokens=3).shape == (3, 4)


def test_tie_encoder_decoder(tmp_path):
    model = _seq2seq()
    tied = seq2seq.tie_encoder_decoder(model)
    encoder, decoder = model.encoder, model.decoder
    layer = decoder.albert.encoder.albert_layer_groups[0].albert_layers[0]
    assert decoder.albert.embeddings.word_embeddings.weight is encoder.embeddings.word_embeddings.weight
    assert layer.attention.query.weight is encoder.encoder.albert_layer_groups[0].albert_layers[0].attention.query.weight
    assert decoder.predictions.decoder.weight is encoder.embeddings.word_embeddings.weight  # head follows
    assert not any(p is q for p in layer.crossattention.parameters() for q in encoder.parameters())
    assert "embeddings.word_embeddings.weight" in tied and not any("crossattention" in name for name in tied)
    # a training step keeps them one tensor
    ids, mask = _source()
    labels = torch.randint(5, 40, (3, 4))
    model.train()
    model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.5).step()
    assert layer.ffn.weight is encoder.encoder.albert_layer_groups[0].albert_layers[0].ffn.weight
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, labels=labels).logits
    seq2seq.save_encoder_decoder(model, tmp_path / "tied")
    plain = EncoderDecoderModel.from_pretrained(tmp_path / "tied").eval()  # both halves stored: any loader works
    reloaded = seq2seq.load_encoder_decoder(tmp_path / "tied").eval()  # ... and ours ties them again
    assert reloaded.decoder.albert.embeddings.word_embeddings.weight is reloaded.encoder.embeddings.word_embeddings.weight
    with torch.no_grad():
        for other in (plain, reloaded):
            torch.testing.assert_close(other(input_ids=ids, attention_mask=mask, labels=labels).logits, expected)


def test_transformers_5_ignores_tie_encoder_decoder(tmp_path):
    """The premise of `seq2seq.tie_encoder_decoder`: the stock flag no longer ties anything (here for BERT)."""
    BertModel(BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                         intermediate_size=64)).save_pretrained(tmp_path / "bert")
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(tmp_path / "bert", tmp_path / "bert",
                                                                tie_encoder_decoder=True)
    assert model.config.tie_encoder_decoder
    assert model.encoder.embeddings.word_embeddings.weight is not model.decoder.bert.embeddings.word_embeddings.weight


def test_save_load_and_remote_code_without_the_package(tmp_path):
    model = _seq2seq()
    ids, mask = _source()
    expected = model.generate(ids, attention_mask=mask, max_new_tokens=6, num_beams=2)
    folder = seq2seq.save_encoder_decoder(model, tmp_path / "s2s")
    reloaded = EncoderDecoderModel.from_pretrained(folder)
    assert torch.equal(reloaded.generate(ids, attention_mask=mask, max_new_tokens=6, num_beams=2), expected)
    torch.save({"ids": ids, "mask": mask, "expected": expected}, tmp_path / "io.pt")
    # transformers 5 resolves EncoderDecoderConfig's sub-configs by registered model type only (trust_remote_code
    # does not reach them), so without the package the two classes are registered from the folder's code first
    run_without_package(f"""
        import torch
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, EncoderDecoderModel
        from transformers.dynamic_module_utils import get_class_from_dynamic_module as remote
        folder = {str(folder)!r}
        config_class = remote("configuration_albert_recipes.AlbertRecipesConfig", folder)
        AutoConfig.register(config_class.model_type, config_class)
        AutoModel.register(config_class, remote("modeling_albert_recipes.AlbertRecipesModel", folder))
        AutoModelForCausalLM.register(config_class, remote("modeling_albert_recipes.AlbertRecipesForCausalLM", folder))
        model = EncoderDecoderModel.from_pretrained(folder)
        assert "transformers_modules" in type(model.decoder).__module__
        io = torch.load({str(tmp_path / "io.pt")!r}, weights_only=True)
        out = model.generate(io["ids"], attention_mask=io["mask"], max_new_tokens=6, num_beams=2)
        assert torch.equal(out, io["expected"]), (out, io["expected"])
    """)


def test_text2text_pipeline_is_gone_from_transformers_5():
    """Why the recipe decodes with `generate` and no pipeline: transformers 5 removed text2text-generation (and
    summarization/translation). If a release brings it back, this fails and the README should say so."""
    from transformers import pipeline

    with pytest.raises(KeyError, match="removed|Unknown task"):
        pipeline("text2text-generation", model=_seq2seq())


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_gradient_checkpointing_trains_the_decoder(use_reentrant):
    """Checkpointed training gives the gradients of plain training. The decoder's cache (on by default) must stay
    off: the recomputation would otherwise update it twice (non-reentrant: a CheckpointError) or read the
    cross-attention keys it cached without gradient (reentrant: the encoder silently gets no gradient)."""
    ids, mask = _source()
    labels = torch.randint(5, 40, (3, 4))
    grads = []
    for checkpointing in (False, True):
        model = _seq2seq()
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": use_reentrant})
        model.train()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        cross = model.decoder.albert.encoder.albert_layer_groups[0].albert_layers[0].crossattention
        assert cross.query.weight.grad is not None and cross.query.weight.grad.abs().sum() > 0
        # the encoder learns through the recomputed cross-attention (its output reaches the layer as an input)
        encoder_layer = model.encoder.encoder.albert_layer_groups[0].albert_layers[0]
        assert encoder_layer.ffn.weight.grad is not None and encoder_layer.ffn.weight.grad.abs().sum() > 0
        grads.append({name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_bad_decoder_input_is_a_clear_error():
    with pytest.raises(ValueError, match="add_cross_attention=True needs is_decoder=True"):
        AlbertRecipesForCausalLM(_config(add_cross_attention=True))
    model = _seq2seq()
    ids, mask = _source()
    too_long = torch.randint(5, 40, (3, SMALL["max_position_embeddings"] + 1))
    with pytest.raises(ValueError, match="max_position_embeddings=24"):
        model(input_ids=ids, attention_mask=mask, decoder_input_ids=too_long)
    with pytest.raises(ValueError, match="max_position_embeddings=24"):
        model.generate(ids, attention_mask=mask, max_new_tokens=40, min_new_tokens=40)
    model.config.decoder_start_token_id = None
    with pytest.raises(ValueError, match="decoder_start_token_id"):
        model(input_ids=ids, attention_mask=mask, labels=torch.randint(5, 40, (3, 4)))
    encoder_only = AlbertRecipesForCausalLM(_config(is_decoder=True))  # no cross-attention
    with pytest.raises(ValueError, match="add_cross_attention"):
        encoder_only(ids, encoder_hidden_states=torch.randn(3, 7, 32))


def test_encoder_mode_is_unchanged():
    config = _config()
    assert not config.is_decoder and not config.add_cross_attention
    model = AlbertRecipesModel(config)
    assert not any("crossattention" in name for name in model.state_dict())
    assert model.encoder.albert_layer_groups[0].albert_layers[0].attention.is_causal is False


def test_causal_lm_without_is_decoder_warns(caplog):
    with caplog.at_level(logging.WARNING):
        model = AlbertRecipesForCausalLM(_config())
    assert "is_decoder=False attends to later tokens" in caplog.text
    assert model.get_output_embeddings() is model.predictions.decoder


def test_causal_lm_remote_code_and_text_generation_pipeline(tmp_path, tiny_tokenizer):
    from transformers import pipeline

    torch.manual_seed(0)
    config = _config(vocab_size=len(tiny_tokenizer), pad_token_id=tiny_tokenizer.pad_token_id, is_decoder=True,
                     max_position_embeddings=64)
    model = AlbertRecipesForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    tiny_tokenizer.save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)  # the pipeline changes its tokenizer (left padding): a copy
    prompt = tokenizer("the value of", return_tensors="pt", add_special_tokens=False).input_ids
    expected = model.generate(prompt, max_new_tokens=5, do_sample=False)
    generate = pipeline("text-generation", model=model, tokenizer=tokenizer, device="cpu")
    text = generate("the value of", max_new_tokens=5, do_sample=False, return_full_text=False,
                    add_special_tokens=False)[0]["generated_text"]
    # the same tokens; transformers 5.0's pipeline keeps the space that separated them from the prompt, later ones not
    assert text.strip() == tokenizer.decode(expected[0, prompt.shape[1]:], skip_special_tokens=True).strip()
    # a standalone causal LM loads with trust_remote_code alone (its config.json names the class in auto_map)
    run_without_package(f"""
        import torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()
        assert "transformers_modules" in type(model).__module__
        out = model.generate(torch.tensor({prompt.tolist()}), max_new_tokens=5, do_sample=False)
        assert out.tolist() == {expected.tolist()}, out
    """)


@pytest.mark.parametrize("extensions", [{"residual_attention": True}, {"depth_weighted_average": True, "layerdrop": 0.2}])
def test_decoder_with_cross_layer_extensions(extensions):
    """The cross-layer extensions run in the decoder too: still causal, and cached generation equals uncached.
    Under sdpa, residual attention runs eagerly, so it must get the materialised causal mask."""
    try:
        _check_extensions_in_the_decoder(extensions)
    finally:  # residual attention under sdpa warns once per process: let test_cross_layer see its own warning
        logging.Logger.warning_once.cache_clear()


def _check_extensions_in_the_decoder(extensions: dict) -> None:
    model = _seq2seq("sdpa", **extensions)
    if "depth_weighted_average" in extensions:  # leave the identity start so the averaging really mixes depths
        for side in (model.encoder, model.decoder.albert):
            with torch.no_grad():
                side.encoder.depth_weights.weight.add_(0.3)
    decoder_ids, _ = _assert_causal(model)
    _assert_cached_equals_uncached(model, max_new_tokens=8)
    # elastic depth: the decoder runs only its first application too
    shallow = model.decoder(decoder_ids, encoder_hidden_states=torch.randn(3, 7, 32), num_layers=1).logits
    assert shallow.shape == (3, 6, 40)

"""ALBERT on both sides of `transformers.EncoderDecoderModel`: build (warm-started or random), tie, save, generate.

Warm-starting follows Rothe, Narayan & Severyn (2020, arXiv 1907.12461): encoder and decoder both start from an
encoder checkpoint; the decoder gets a causal mask and a cross-attention sublayer (initialised fresh), and its LM
head is ALBERT's MLM head. Decoder mode is this project's extension, not the ALBERT paper's: ALBERT is an encoder.

`tie_encoder_decoder=True` (Rothe et al.'s shared encoder/decoder weights) was a flag of `EncoderDecoderConfig` in
transformers 4; transformers 5 still stores the flag but ignores it, for every model. `tie_encoder_decoder(model)`
does the tying for ours; `save_encoder_decoder` writes a checkpoint that any `EncoderDecoderModel.from_pretrained`
reads (both sides stored in full), and `load_encoder_decoder` ties again when the saved config asks for it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from transformers import AutoModel, AutoModelForCausalLM, EncoderDecoderModel, PretrainedConfig

from .errors import InputError
from .io_utils import atomic_directory

_CODE_FILES = ("configuration_albert_recipes.py", "modeling_albert_recipes.py")


def set_special_tokens(model: EncoderDecoderModel, start: int, end: int, pad: int) -> None:
    """Decoder start, end and pad ids where `EncoderDecoderModel` (labels -> decoder inputs) and `generate` read them."""
    for config in (model.config, model.generation_config):
        config.decoder_start_token_id = start
        config.eos_token_id = end
        config.pad_token_id = pad
    model.config.decoder.eos_token_id = end
    model.config.decoder.pad_token_id = pad


def decoder_config(config: PretrainedConfig) -> PretrainedConfig:
    """A copy of an encoder config set up as a seq2seq decoder (causal self-attention + cross-attention)."""
    config = config.__class__.from_dict(config.to_dict())
    config.is_decoder = True
    config.add_cross_attention = True
    return config


def check_pretrained_source(name_or_path: str | Path) -> None:
    """A local folder that is not there is a clear error here rather than a failed Hub lookup; a `namespace/name`
    that is no local folder is left to the Hub."""
    path = Path(name_or_path)
    if path.is_dir():
        return
    if path.is_absolute() or str(name_or_path).startswith(".") or len(path.parts) != 2 or path.exists():
        raise InputError(f"pretrained model folder not found: {name_or_path} (recipes/pretrain.py writes one to "
                         "<output_dir>/final; a Hub model is given as namespace/name)")


def warm_started(
    encoder_path: str | Path, decoder_path: str | Path | None = None, tie: bool = False
) -> EncoderDecoderModel:
    """Both sides from pretrained folders or Hub ids (the decoder from the encoder's by default), as Rothe et al.
    do: the decoder gets a causal mask and a fresh cross-attention sublayer."""
    for path in {encoder_path, decoder_path or encoder_path}:
        check_pretrained_source(path)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(encoder_path), str(decoder_path or encoder_path))
    if tie:
        tie_encoder_decoder(model)
    return model


def random_init(config: PretrainedConfig, tie: bool = False) -> EncoderDecoderModel:
    """Same architecture as `warm_started` with fresh weights: the baseline that shows what pretraining adds."""
    encoder_config = config.__class__.from_dict(config.to_dict())
    encoder_config.is_decoder = encoder_config.add_cross_attention = False
    model = EncoderDecoderModel(
        encoder=AutoModel.from_config(encoder_config),
        decoder=AutoModelForCausalLM.from_config(decoder_config(config)),
    )
    if tie:
        tie_encoder_decoder(model)
    return model


def tie_encoder_decoder(model: EncoderDecoderModel) -> list[str]:
    """Make every decoder backbone parameter that has an encoder twin (same name and shape) the encoder's parameter:
    embeddings, the E -> H projection and the shared layer's self-attention and feed-forward. The decoder's
    cross-attention and LM head stay its own (the head remains tied to the now shared word embeddings). Returns the
    tied names. Both sides must be the same architecture."""
    encoder, backbone = model.encoder, model.decoder.base_model
    if encoder.config.model_type != backbone.config.model_type:
        raise InputError(f"tie_encoder_decoder needs the same model type on both sides, got "
                         f"{encoder.config.model_type!r} and {backbone.config.model_type!r}")
    sources = dict(encoder.named_parameters())
    tied = []
    for module_name, module in backbone.named_modules():
        for name, param in list(module.named_parameters(recurse=False)):
            full_name = f"{module_name}.{name}" if module_name else name
            source = sources.get(full_name)
            if source is not None and source.shape == param.shape:
                setattr(module, name, source)
                tied.append(full_name)
    if not tied:
        raise InputError("the encoder and the decoder share no parameter names; nothing to tie")
    model.decoder.tie_weights()  # the LM head follows the word embeddings it is tied to
    model.config.tie_encoder_decoder = True
    return tied


def _untied_state_dict(model: EncoderDecoderModel) -> dict[str, torch.Tensor]:
    """The state dict with the decoder's copies of shared encoder tensors cloned: safetensors refuses aliased
    tensors, and a checkpoint that stored them once would load into a plain `EncoderDecoderModel` with the decoder
    half missing."""
    state = model.state_dict()
    encoder_storage = {t.untyped_storage().data_ptr() for k, t in state.items() if k.startswith("encoder.")}
    return {k: t.clone() if k.startswith("decoder.") and t.untyped_storage().data_ptr() in encoder_storage else t
            for k, t in state.items()}


def save_encoder_decoder(model: EncoderDecoderModel, folder: str | Path, tokenizer=None,
                         extra_files: dict[str, str] | None = None) -> Path:
    """`save_pretrained` in one atomic rename, with the tokenizer, `extra_files` (name -> text) and this package's
    two model files (so the folder also loads without the package once they are registered; see the README)."""
    with atomic_directory(folder) as tmp:
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        model.save_pretrained(tmp, state_dict=_untied_state_dict(model))
        here = Path(__file__).resolve().parent
        for name in _CODE_FILES:
            shutil.copy2(here / name, tmp / name)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return Path(folder)


def load_encoder_decoder(folder: str | Path) -> EncoderDecoderModel:
    """`EncoderDecoderModel.from_pretrained`, tied again if it was saved tied."""
    model = EncoderDecoderModel.from_pretrained(str(folder))
    if getattr(model.config, "tie_encoder_decoder", False):
        tie_encoder_decoder(model)
    return model


@torch.no_grad()
def generate_texts(model: EncoderDecoderModel, tokenizer, texts: list[str], max_source_length: int,
                   batch_size: int = 32, **generate_kwargs) -> list[str]:
    """Decode `texts` in batches with `model.generate(**generate_kwargs)`; special tokens are dropped."""
    model.eval()
    device = next(model.parameters()).device
    outputs = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], truncation=True, max_length=max_source_length,
                          padding=True, return_tensors="pt", return_token_type_ids=False).to(device)
        generated = model.generate(**batch, **generate_kwargs)
        outputs.extend(t.strip() for t in tokenizer.batch_decode(generated, skip_special_tokens=True))
    return outputs


__all__ = [
    "check_pretrained_source", "decoder_config", "generate_texts", "load_encoder_decoder", "random_init", "save_encoder_decoder",
    "set_special_tokens", "tie_encoder_decoder", "warm_started",
]

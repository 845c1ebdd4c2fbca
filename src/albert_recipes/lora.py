"""PEFT LoRA defaults for ALBERT (`model_type="albert_recipes"`).

PEFT picks default `target_modules` from a per-model-type table and has no entry for ALBERT (stock or ours).
`register_peft_defaults()` adds ours, so `get_peft_model(model, LoraConfig(task_type="SEQ_CLS"))` just works.

ALBERT shares one transformer layer across the whole depth (cross-layer parameter sharing), so there is
exactly one `query`, one `ffn`, ... module, and one LoRA adapter on it acts at every depth: a rank-r adapter
on an L-layer ALBERT costs the parameters of a single BERT layer's adapter, not L of them, and it cannot
specialise per layer. The registered defaults therefore adapt every matrix of the shared layer (attention and
FFN) plus the pooler, which ALBERT pretrains for sentence order prediction and classification reuses.

That alone leaves a small ALBERT's word embeddings frozen, and they hold most of its parameters (64% of the `tiny`
main job's) and the lexical cues a task like SST-2 needs: such an adapter does not learn SST-2 at all (majority
class). The fine-tuning recipe's default, `RECIPE_TARGET_MODULES`, adds a LoRA pair on the word-embedding matrix,
which PEFT adapts natively (`nn.Embedding`; rank r costs r x (vocab + E) parameters). Measured on SST-2 (README
"LoRA on ALBERT"): 50.9% -> 71.8% dev; training the LayerNorms and the E -> H projection in full
(`modules_to_save`) instead did not help (50.9%), both together gave 68.9%. It saves, reloads and merges like any
PEFT adapter. Not for a masked-LM head: its decoder is tied to the word embeddings, which a merge would change too.
"""

from __future__ import annotations

from .errors import InputError

MODEL_TYPE = "albert_recipes"

# suffixes of module names; "attention.dense" (not "dense") keeps the masked-LM head's `predictions.dense` out
DEFAULT_TARGET_MODULES = ("query", "key", "value", "attention.dense", "ffn", "ffn_output", "pooler")

# the fine-tuning recipe's default (measured: README "LoRA on ALBERT"); for the task heads below, not a tied MLM head
RECIPE_TARGET_MODULES = (*DEFAULT_TARGET_MODULES, "word_embeddings")

# the randomly initialised task head, trained in full and saved with the adapter: PEFT's task models add it to
# `modules_to_save` by themselves (listing it again would duplicate the entry)
TASK_HEADS = {"SEQ_CLS": ["classifier"], "TOKEN_CLS": ["classifier"], "QUESTION_ANS": ["qa_outputs"]}


def register_peft_defaults() -> bool:
    """Register the LoRA target modules for `albert_recipes` with PEFT; False (and no error) without PEFT."""
    try:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING
    except ImportError:
        return False
    TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.setdefault(MODEL_TYPE, list(DEFAULT_TARGET_MODULES))
    return True


def lora_config(task_type: str, r: int = 8, alpha: float = 16, dropout: float = 0.1,
                target_modules: list[str] | None = None, modules_to_save: list[str] = ()):
    """A `peft.LoraConfig` for one of `TASK_HEADS`' task types; empty `target_modules` = the registered defaults."""
    from peft import LoraConfig

    if task_type not in TASK_HEADS:
        raise InputError(f"unknown task_type {task_type!r}; choose one of {sorted(TASK_HEADS)}")
    if r < 1:
        raise InputError(f"LoRA rank r must be at least 1, got {r}")
    if not 0 <= dropout < 1:
        raise InputError(f"LoRA dropout must be in [0, 1), got {dropout}")
    register_peft_defaults()
    return LoraConfig(
        task_type=task_type,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules) if target_modules else None,
        modules_to_save=list(modules_to_save) or None,
    )


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameters; `parameters()` yields each shared or tied tensor once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

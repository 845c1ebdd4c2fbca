"""ALBERT (Lan et al. 2019, arXiv:1909.11942) for Hugging Face Transformers.

Self-contained on purpose: it imports only torch and transformers, so `save_pretrained` can copy it next to the
weights for `trust_remote_code=True`; it works with transformers 5.0 and later. Parameter names match `transformers`'
stock ALBERT, so checkpoints load both ways. What the paper defines: factorized embeddings (vocab -> E -> H),
cross-layer parameter sharing (`num_hidden_groups` groups of `inner_group_num` layers, applied `num_hidden_layers`
times), MLM + sentence-order prediction heads. What this file adds: activation checkpointing (the stock model refuses
it), early input checks with clear errors, the opt-in `sparse_mlm_prediction` head, the opt-in cross-layer
extensions (see the config): RealFormer residual attention, DenseFormer depth-weighted averaging, elastic depth
(`num_layers`) with LayerDrop, and PABEE early exit that drops finished rows from the running batch; and decoder mode
(`is_decoder`, `add_cross_attention`, a key/value cache, `AlbertRecipesForCausalLM`) for `EncoderDecoderModel` and
generation.

transformers 5 conventions: attention through `ALL_ATTENTION_FUNCTIONS.get_interface` (so `set_attn_implementation`
works), masks from `masking_utils`, hidden states and attentions recorded by hooks (`_can_record_outputs` +
`capture_outputs`, which also takes `output_hidden_states=[0, -1]`), tuples through `can_return_tuple`, and tying
only through `_tied_weights_keys`. Extra keyword arguments flow from the heads down to the attention function.
"""

import copy
import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask, packed_sequence_mask_function
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPooling,
    BaseModelOutputWithPoolingAndCrossAttentions,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.pytorch_utils import apply_chunking_to_forward
from transformers.utils import ModelOutput, TransformersKwargs, logging
from transformers.utils.generic import can_return_tuple

try:  # newer transformers
    from transformers.utils.output_capturing import OutputRecorder, capture_outputs
except ImportError:  # transformers 5.0: the same hook-based recording, under its earlier name
    from transformers.utils.generic import OutputRecorder
    from transformers.utils.generic import check_model_inputs as capture_outputs

from .configuration_albert_recipes import AlbertRecipesConfig

logger = logging.get_logger(__name__)

# Newer transformers let the caller forbid the mask-content check (`mask.all()`, a host sync on an accelerator)
_MASK_SKIP_IS_OPTIONAL = "allow_is_bidirectional_skip" in inspect.signature(create_bidirectional_mask).parameters
# create_causal_mask's signature moved: 5.0 needs `cache_position` and names the embeddings `input_embeds`
_CAUSAL_MASK_PARAMETERS = inspect.signature(create_causal_mask).parameters
_CAUSAL_MASK_CACHE = "cache" if "cache" in _CAUSAL_MASK_PARAMETERS else "past_key_values"  # renamed in transformers 5.24


def _reads_values(tensor: torch.Tensor | None) -> bool:
    """Value checks (min/max, `.all()`) run on CPU tensors only: on an accelerator they would wait for the device."""
    return tensor is not None and tensor.device.type == "cpu" and not torch.compiler.is_compiling()


def _activation(name: str) -> nn.Module:
    """`ACT2FN[name]`, except that "gelu_new" (ALBERT v2's tanh GELU, seven elementwise ops in transformers' Python
    version) runs as torch's fused tanh-GELU kernel: the same function to float rounding, about twice as fast forward
    and backward on CPU, and it keeps fewer activations for the backward pass."""
    return ACT2FN["gelu_pytorch_tanh" if name == "gelu_new" else name]


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    return residual_attention_forward(module, query, key, value, attention_mask, scaling, dropout)[:2]


def residual_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    residual_scores: torch.Tensor | None = None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eager attention; with `residual_scores`, RealFormer's (arXiv 2012.11747): the previous layer's raw scores are
    added to this one's before the mask and softmax. Returns (output, weights, raw scores): the sum travels on
    unmasked."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, heads, T, T)
    if residual_scores is not None:
        scores = scores + residual_scores
    masked = scores
    if attention_mask is not None and attention_mask.dtype == torch.bool:  # sdpa's format: True = attend
        masked = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:  # additive: 0 = attend, dtype minimum = hidden
        masked = scores + attention_mask
    weights = nn.functional.softmax(masked, dim=-1)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (B, T, heads, head_dim)
    return output, weights, scores


class AlbertRecipesEmbeddings(nn.Module):
    """Token + position + segment embeddings of width E (the factorized size), then LayerNorm."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.embedding_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.register_buffer(
            "position_ids", torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        token_type_ids: torch.LongTensor | None,
        position_ids: torch.LongTensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)  # (B, T, E)
        if position_ids is None:
            position_ids = self.position_ids[:, : inputs_embeds.shape[1]]
        embeddings = inputs_embeds + self.position_embeddings(position_ids)
        if token_type_ids is None:
            # segment 0 everywhere: add its single row instead of looking up a (B, T) index tensor
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))  # (B, T, E)


class AlbertRecipesAttention(nn.Module):
    """Multi-head self-attention, then output projection, residual and post-LayerNorm."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.config = config
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = bool(getattr(config, "is_decoder", False))  # read by the sdpa/flash kernels
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.attention_dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.output_dropout = nn.Dropout(config.hidden_dropout_prob)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        application_index: int = 0,
        residual_scores: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        key_value_states: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None] | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`application_index`: which application of this shared layer runs (per-application state keys on it, such
        as a decoder's cache slot). With `config.residual_attention`, `residual_scores` are the raw scores of the
        layer run before this one, and the raw scores of this one come back as a third output. `key_value_states`:
        what to attend to, if not `hidden_states` (cross-attention)."""
        batch, seq_len, _ = hidden_states.shape
        query = self._heads(self.query, hidden_states)  # (B, heads, T, head_dim)
        key, value = self._keys_values(
            hidden_states if key_value_states is None else key_value_states, past_key_values, application_index
        )  # (B, heads, S, head_dim): S = cached + new tokens in a decoder, the source length in cross-attention

        dropout = self.attention_dropout.p if self.training else 0.0
        if self.config.residual_attention:
            if self.config._attn_implementation not in (None, "eager"):
                logger.warning_once(
                    f"residual_attention needs the raw attention scores, which only eager attention computes: using "
                    f"eager instead of {self.config._attn_implementation!r}"
                )
            context, weights, scores = residual_attention_forward(
                self, query, key, value, attention_mask, self.scaling, dropout, residual_scores
            )
        else:
            context, weights = self.kernel(kwargs.get("output_attentions", False))(
                self, query, key, value, attention_mask, dropout=dropout, scaling=self.scaling, **kwargs
            )
        context = context.reshape(batch, seq_len, -1)  # (B, T, H)
        output = self.LayerNorm(hidden_states + self.output_dropout(self.dense(context)))
        if self.config.residual_attention:
            return output, weights, scores  # scores: (B, heads, T, S), summed over the layers so far, unmasked
        return output, weights  # weights: (B, heads, T, S), or None from kernels that do not materialise them

    def _heads(self, projection: nn.Linear, states: torch.Tensor) -> torch.Tensor:
        batch, length, _ = states.shape
        return projection(states).view(batch, length, -1, self.head_dim).transpose(1, 2)  # (B, heads, T, head_dim)

    def _keys_values(
        self, states: torch.Tensor, past_key_values: Cache | None, application_index: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        key, value = self._heads(self.key, states), self._heads(self.value, states)
        if past_key_values is not None:  # decoding: this application's slot of the cache gets the new tokens
            cache = getattr(past_key_values, "self_attention_cache", past_key_values)
            key, value = cache.update(key, value, application_index)
        return key, value

    def kernel(self, output_attentions: bool = False) -> Callable:
        """The attention function configured on the model (`set_attn_implementation` changes it); eager where the
        caller wants the weights and sdpa cannot return them (the stock model would warn and return none)."""
        if output_attentions and self.config._attn_implementation == "sdpa":
            return eager_attention_forward
        if hasattr(ALL_ATTENTION_FUNCTIONS, "get_interface"):  # validates the name; transformers 5.0 lacks it
            return ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        if self.config._attn_implementation in (None, "eager"):
            return eager_attention_forward
        return ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]


class AlbertRecipesCrossAttention(AlbertRecipesAttention):
    """Attention from decoder positions to the encoder's output (same parameters and post-LN residual as the
    self-attention). Its keys/values are computed once per generation and kept in the cross-attention cache."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.is_causal = False

    def _keys_values(
        self, states: torch.Tensor, past_key_values: Cache | None, application_index: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(past_key_values, EncoderDecoderCache):
            return self._heads(self.key, states), self._heads(self.value, states)
        if past_key_values.is_updated.get(application_index):  # the encoder output does not change while decoding
            layer = past_key_values.cross_attention_cache.layers[application_index]
            return layer.keys, layer.values
        key, value = past_key_values.cross_attention_cache.update(
            self._heads(self.key, states), self._heads(self.value, states), application_index
        )
        past_key_values.is_updated[application_index] = True
        return key, value


class AlbertRecipesLayer(GradientCheckpointingLayer):
    """Post-LN self-attention + feed-forward; one instance is reused at several depths (parameter sharing)."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.attention = AlbertRecipesAttention(config)
        if getattr(config, "add_cross_attention", False):
            # one per layer, so shared across depth like the rest; encoder checkpoints lack it: initialised fresh
            self.crossattention = AlbertRecipesCrossAttention(config)
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = _activation(config.hidden_act)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        application_index: int = 0,
        residual_scores: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """With `config.residual_attention`, returns (hidden states, raw attention scores) for the next layer; pass
        `residual_scores` positionally so reentrant activation checkpointing propagates their gradient too (and a
        decoder's `encoder_hidden_states` likewise)."""
        attended = self.attention(hidden_states, attention_mask, application_index, residual_scores, **kwargs)
        attention_output = attended[0]  # (B, T, H)
        if encoder_hidden_states is not None:  # seq2seq decoder: attend to the encoder's output (B, S, H)
            attention_output = self.crossattention(
                attention_output, encoder_attention_mask, application_index,
                key_value_states=encoder_hidden_states, **kwargs,
            )[0]
        if self.chunk_size_feed_forward:  # run it in sequence chunks to save memory (same result)
            ffn_output = apply_chunking_to_forward(self.feed_forward, self.chunk_size_feed_forward, 1, attention_output)
        else:
            ffn_output = self.feed_forward(attention_output)
        output = self.full_layer_layer_norm(self.dropout(ffn_output) + attention_output)  # (B, T, H)
        return (output, attended[2]) if self.attention.config.residual_attention else output

    def feed_forward(self, attention_output: torch.Tensor) -> torch.Tensor:
        return self.ffn_output(self.activation(self.ffn(attention_output)))  # (B, T, H) -> (B, T, I) -> (B, T, H)


class AlbertRecipesLayerGroup(nn.Module):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList([AlbertRecipesLayer(config) for _ in range(config.inner_group_num)])


class AlbertRecipesDepthWeights(nn.Module):
    """DenseFormer's depth-weighted average (arXiv 2402.02622): after application i (0-based) the next input is
    sum_j weight[i, j] * x_j over x_0 (the projected embeddings) .. x_{i+1} (the newest output). Row i uses its
    first i + 2 entries; initialised to the identity (1 on the newest output), i.e. the plain model."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        depth = config.num_hidden_layers
        self.weight = nn.Parameter(self.identity(depth))  # (L - 1, L)

    @staticmethod
    def identity(depth: int) -> torch.Tensor:
        return torch.eye(depth)[1:]  # row i: 1 at column i + 1

    def forward(self, index: int, outputs: list[torch.Tensor]) -> torch.Tensor:
        weights = self.weight[index, : len(outputs)].to(outputs[0].dtype)  # (i + 2,)
        return torch.einsum("j,j...->...", weights, torch.stack(outputs))  # (i + 2, B, T, H) -> (B, T, H)


def _select_rows(value, keep: torch.Tensor, batch: int):
    """`value` narrowed to the rows in `keep` where it has the running batch as its first dimension (hidden states,
    masks, scores, per-row keyword tensors); lists and dicts element-wise; everything else as it is."""
    if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == batch:
        return value[keep]
    if isinstance(value, list):
        return [_select_rows(v, keep, batch) for v in value]
    if isinstance(value, dict):
        return {k: _select_rows(v, keep, batch) for k, v in value.items()}
    return value


class AlbertRecipesTransformer(nn.Module):
    """Projects E -> H once, then applies the shared layer groups `num_hidden_layers` times (or `num_layers`)."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.config = config
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)
        self.albert_layer_groups = nn.ModuleList(
            [AlbertRecipesLayerGroup(config) for _ in range(config.num_hidden_groups)]
        )
        self.depth_weights = AlbertRecipesDepthWeights(config) if config.depth_weighted_average else None

    def layer_applications(self) -> list[AlbertRecipesLayer]:
        """The layers in the order they run: depth d uses group d // (L / G), and every layer of that group."""
        per_group = self.config.num_hidden_layers // self.config.num_hidden_groups
        return [
            layer
            for depth in range(self.config.num_hidden_layers)
            for layer in self.albert_layer_groups[depth // per_group].albert_layers
        ]

    def forward(
        self,
        embeddings: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        num_layers: int | None = None,
        exit_policy: Callable[[int, torch.Tensor], torch.Tensor | None] | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutput:
        """`num_layers`: how many of the `num_hidden_layers` applications to run. `exit_policy(i, hidden_states)`
        is called after application i (0-based) with its output; it returns None, or a (B,) bool tensor of the
        rows that go on: the others leave the running batch (hidden states, mask, scores, per-row keywords)."""
        hidden_states = self.embedding_hidden_mapping_in(embeddings)  # (B, T, E) -> (B, T, H)
        # a decoder's encoder states go positionally: reentrant activation checkpointing passes gradients to inputs only
        cross = kwargs.pop("encoder_hidden_states", None), kwargs.pop("encoder_attention_mask", None)
        depth = self.config.num_hidden_layers if num_layers is None else num_layers
        layers = self.layer_applications()
        inner = self.config.inner_group_num
        scores = None  # residual attention: the raw scores of the last layer run, (B, heads, T, T)
        outputs = [hidden_states] if self.depth_weights is not None else None  # depth-weighted average: x_0 .. x_i
        for step in range(depth):
            # LayerDrop draws on the CPU generator: no device sync, and seeded runs repeat
            if not (self.training and self.config.layerdrop and torch.rand(()) < self.config.layerdrop):
                for index in range(step * inner, (step + 1) * inner):
                    out = layers[index](hidden_states, attention_mask, index, scores, *cross, **kwargs)
                    hidden_states, scores = out if self.config.residual_attention else (out, None)
            keep = exit_policy(step, hidden_states) if exit_policy is not None else None
            if keep is not None and not bool(keep.all()):
                if not bool(keep.any()):
                    break
                batch = hidden_states.shape[0]
                hidden_states, attention_mask, scores, outputs, kwargs = _select_rows(
                    [hidden_states, attention_mask, scores, outputs, kwargs], keep, batch
                )
            if outputs is not None and step < depth - 1:
                outputs.append(hidden_states)
                hidden_states = self.depth_weights(step, outputs)
        return BaseModelOutput(last_hidden_state=hidden_states)


# Written into every saved config so that any Auto class loads the folder with `trust_remote_code=True`.
AUTO_MAP = {
    "AutoConfig": "configuration_albert_recipes.AlbertRecipesConfig",
    "AutoModel": "modeling_albert_recipes.AlbertRecipesModel",
    "AutoModelForPreTraining": "modeling_albert_recipes.AlbertRecipesForPreTraining",
    "AutoModelForMaskedLM": "modeling_albert_recipes.AlbertRecipesForMaskedLM",
    "AutoModelForCausalLM": "modeling_albert_recipes.AlbertRecipesForCausalLM",
    "AutoModelForSequenceClassification": "modeling_albert_recipes.AlbertRecipesForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_albert_recipes.AlbertRecipesForTokenClassification",
    "AutoModelForQuestionAnswering": "modeling_albert_recipes.AlbertRecipesForQuestionAnswering",
    "AutoModelForMultipleChoice": "modeling_albert_recipes.AlbertRecipesForMultipleChoice",
}


def _output_recorder(target: type[nn.Module], index: int, **newer_fields) -> OutputRecorder:
    """An `OutputRecorder`, given only the fields this transformers version has (5.0 lacks the later ones)."""
    known = {field.name for field in dataclasses.fields(OutputRecorder)}
    return OutputRecorder(target, index=index, **{k: v for k, v in newer_fields.items() if k in known})


class AlbertRecipesPreTrainedModel(PreTrainedModel):
    config_class = AlbertRecipesConfig
    base_model_prefix = "albert"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AlbertRecipesLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True
    _can_record_outputs = {
        # one hidden state per layer application (plus the projected embeddings), so negative indices in
        # `output_hidden_states=[0, -1]` count from `num_layer_applications`, not `num_hidden_layers`
        "hidden_states": _output_recorder(AlbertRecipesLayer, 0, num_hidden_layers_key="num_layer_applications"),
        # self-attention only, by module name: a decoder's cross-attention is a subclass (".attention" matches as a
        # substring in transformers 5.0 and as a dotted name part later, never inside "crossattention")
        "attentions": _output_recorder(AlbertRecipesAttention, 1, layer_name=".attention"),
    }

    def __init__(self, config: AlbertRecipesConfig, *inputs, **kwargs):
        AlbertRecipesConfig.check(config)  # the clear errors for inconsistent sizes, before any allocation
        super().__init__(config, *inputs, **kwargs)
        # entries already there (e.g. "user/repo--modeling_albert_recipes.X" after a Hub load) take precedence
        config.auto_map = {**AUTO_MAP, **(getattr(config, "auto_map", None) or {})}

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # `transformers.initialization` skips tensors already loaded from a checkpoint; plain `normal_` would not
        super()._init_weights(module)  # normal(0, initializer_range) linears/embeddings, unit LayerNorms
        if isinstance(module, AlbertRecipesMLMHead):
            init.zeros_(module.bias)
        elif isinstance(module, AlbertRecipesEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
        elif isinstance(module, AlbertRecipesDepthWeights):  # the identity: a checkpoint without them runs as before
            init.copy_(module.weight, module.identity(module.weight.shape[1]))
        elif isinstance(module, AlbertRecipesExitClassifiers):
            init.normal_(module.weight, std=self.config.initializer_range)
            init.zeros_(module.bias)


def _check_inputs(
    config: AlbertRecipesConfig,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    past_length: int = 0,
) -> None:
    """Turn the usual input mistakes into a `ValueError` before any kernel runs (torch would give an index error).
    Shapes are always checked; values on CPU only (see `_reads_values`). `past_length`: tokens a decoder's cache
    already holds (they take the first positions)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids or inputs_embeds")
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, seq_len), got shape {tuple(input_ids.shape)}")
        shape = tuple(input_ids.shape)
    else:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.embedding_size:
            raise ValueError(
                f"inputs_embeds must be (batch, seq_len, embedding_size={config.embedding_size}), "
                f"got shape {tuple(inputs_embeds.shape)}"
            )
        shape = tuple(inputs_embeds.shape[:2])
    if past_length + shape[1] > config.max_position_embeddings:
        cached = f" after {past_length} cached tokens" if past_length else ""
        raise ValueError(
            f"sequence length {shape[1]}{cached} exceeds max_position_embeddings={config.max_position_embeddings}; "
            + ("truncate the input" if not past_length else "generate fewer tokens (max_new_tokens)")
        )
    if token_type_ids is not None and tuple(token_type_ids.shape) != shape:
        raise ValueError(f"token_type_ids must have the shape of the input {shape}, got {tuple(token_type_ids.shape)}")
    # a 2-D padding mask, or a ready 4-D one (B, 1 or heads, T, T) that masking_utils passes through as it is
    # a 2-D padding mask, or a ready 4-D one (B, 1 or heads, T, T) that masking_utils passes through as it is; a
    # decoder's mask also covers the `past_length` cached tokens
    keys = past_length + shape[1]
    if attention_mask is not None and tuple(attention_mask.shape) != (shape[0], keys) and not (
        attention_mask.dim() == 4 and attention_mask.shape[0] == shape[0] and attention_mask.shape[-2:] == (shape[1], keys)
    ):
        raise ValueError(
            f"attention_mask must have the shape {(shape[0], keys)} (or be a 4-D (batch, 1, {shape[1]}, {keys}) "
            f"mask), got {tuple(attention_mask.shape)}"
        )
    if position_ids is not None and (position_ids.dim() != 2 or position_ids.shape[-1] != shape[1]):
        raise ValueError(f"position_ids must be (batch or 1, {shape[1]}), got {tuple(position_ids.shape)}")
    for name, tensor, upper in (
        ("input_ids", input_ids, config.vocab_size),
        ("token_type_ids", token_type_ids, config.type_vocab_size),
        ("position_ids", position_ids, config.max_position_embeddings),
    ):
        if _reads_values(tensor) and tensor.numel() and (tensor.min() < 0 or tensor.max() >= upper):
            raise ValueError(
                f"{name} must lie in [0, {upper}), got values in [{int(tensor.min())}, {int(tensor.max())}]"
            )


def _packed_sequences(position_ids: torch.Tensor | None, batch_size: int) -> torch.Tensor | None:
    """(B, T) example index of each token when rows hold packed examples (position ids restart at 0 inside a row, as
    `albert_recipes.packing` lays them out), else None. Reading the ids to find out is a CPU-only check; on an
    accelerator explicit position ids are always treated as possibly packed (the mask is then built, never skipped)."""
    if position_ids is None or position_ids.shape[0] != batch_size:
        return None
    starts = position_ids == 0  # (B, T): each example starts at position 0
    if _reads_values(position_ids) and not bool(starts[:, 1:].any()):
        return None
    return torch.cumsum(starts, dim=-1)


def _check_num_layers(config: AlbertRecipesConfig, num_layers: int | None) -> None:
    if num_layers is not None and (
        not isinstance(num_layers, int)
        or isinstance(num_layers, bool)
        or not 1 <= num_layers <= config.num_hidden_layers
    ):
        raise ValueError(
            f"num_layers must be an integer in 1..num_hidden_layers={config.num_hidden_layers} (how many layer "
            f"applications to run), got {num_layers!r}"
        )


def _bidirectional_mask(
    config: AlbertRecipesConfig,
    embeddings: torch.Tensor,
    attention_mask: torch.Tensor | None,
    packed: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """masking_utils' mask for the configured kernel: None where nothing is hidden (sdpa's fast path), a 4-D mask
    otherwise. Finding out that nothing is hidden reads the mask, so on an accelerator the mask is always built.
    `packed` (B, T) example indices make it block-diagonal: a token attends only to its own example. With
    `encoder_hidden_states`: a decoder's cross-attention mask over the encoder's positions."""
    extra = {}
    if _MASK_SKIP_IS_OPTIONAL:
        extra["allow_is_bidirectional_skip"] = attention_mask is None or _reads_values(attention_mask)
    if packed is not None:
        extra["and_mask_function"] = packed_sequence_mask_function(packed)
    if encoder_hidden_states is not None:
        extra["encoder_hidden_states"] = encoder_hidden_states
    return create_bidirectional_mask(config, embeddings, attention_mask, **extra)


def _first_tokens(sequence_output: torch.Tensor, packed: torch.Tensor | None, position_ids, attention_mask):
    """The [CLS] states the pooler reads: column 0 of each row (B, H), or of each packed example (N, H) in row-major
    order, which is the order of `albert_recipes.packing`'s per-example labels."""
    if packed is None:
        return sequence_output[:, 0]
    starts = position_ids == 0
    if attention_mask is not None and attention_mask.dim() == 2:
        starts = starts & attention_mask.bool()
    return sequence_output[starts]


def _causal_mask(
    config: AlbertRecipesConfig,
    embeddings: torch.Tensor,
    attention_mask: torch.Tensor | None,
    past_key_values: Cache | None,
    output_attentions: bool,
) -> torch.Tensor | None:
    """A decoder's self-attention mask over cached + new tokens. sdpa may get None and apply causality itself
    (`is_causal`), but not when checking the padding mask for holes would wait for an accelerator; and where the
    eager kernel runs instead of the configured one (it stands in for sdpa to return the weights, see
    `AlbertRecipesAttention.kernel`; residual attention is always eager), it gets the eager mask."""
    eager = (output_attentions and config._attn_implementation == "sdpa") or config.residual_attention
    if eager and config._attn_implementation not in (None, "eager"):
        config = copy.copy(config)
        config._attn_implementation_internal = "eager"
    arguments = {"config": config, "attention_mask": attention_mask, _CAUSAL_MASK_CACHE: past_key_values}
    arguments["inputs_embeds" if "inputs_embeds" in _CAUSAL_MASK_PARAMETERS else "input_embeds"] = embeddings
    if "cache_position" in _CAUSAL_MASK_PARAMETERS:
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        arguments["cache_position"] = torch.arange(past, past + embeddings.shape[1], device=embeddings.device)
    if "allow_is_causal_skip" in _CAUSAL_MASK_PARAMETERS:
        arguments["allow_is_causal_skip"] = attention_mask is None or _reads_values(attention_mask)
    return create_causal_mask(**arguments)


# transformers 5.24 renamed the generation cache, argument and output field, from `past_key_values` to `cache`. The
# forward methods take either name and outputs use the field this transformers has, so one remote-code file serves
# 5.0 through 5.24 and later without the deprecation warnings of the old names.
_CACHE_FIELD = "cache" if "cache" in BaseModelOutputWithPoolingAndCrossAttentions.__dataclass_fields__ else "past_key_values"


def _cache_argument(past_key_values: Cache | None, kwargs: dict) -> Cache | None:
    """The key/value cache given as `past_key_values` (transformers < 5.24) or `cache` (5.24 and later)."""
    cache = kwargs.pop("cache", None)
    if cache is not None and past_key_values is not None:
        raise ValueError("a key/value cache was given both as `cache` and as `past_key_values`; give one")
    return past_key_values if cache is None else cache


def _fit_cache(cache: Cache, applications: int) -> Cache:
    """Slots are indexed by application; a `DynamicCache` built from the config has `num_hidden_layers` of them,
    fewer than the applications when `inner_group_num > 1`: add the missing ones."""
    for part in (cache.self_attention_cache, cache.cross_attention_cache) if isinstance(cache, EncoderDecoderCache) else (cache,):
        if getattr(part, "layer_class_to_replicate", None) is not None or len(part.layers) >= applications:
            continue  # it grows by itself, or is large enough
        if not all(type(layer) is DynamicLayer for layer in part.layers):
            raise ValueError(f"the cache has {len(part.layers)} layers but this model runs {applications} layer "
                             "applications (num_hidden_layers x inner_group_num); use a DynamicCache")
        part.layers.extend(DynamicLayer() for _ in range(applications - len(part.layers)))
    return cache


class AlbertRecipesModel(AlbertRecipesPreTrainedModel):
    def __init__(self, config: AlbertRecipesConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = AlbertRecipesEmbeddings(config)
        self.encoder = AlbertRecipesTransformer(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.pooler_activation = nn.Tanh() if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        num_layers: int | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPooling:
        r"""`output_hidden_states` (bool or indices such as `[0, -1]`), `output_attentions` and `return_dict` are
        handled by `capture_outputs`; other keyword arguments reach the attention function. `num_layers` (every
        head takes it): run only the first 1..`num_hidden_layers` layer applications (elastic depth; the hidden
        states are then the first ones of a full run). A decoder (`is_decoder`) also takes the encoder's output
        `encoder_hidden_states` (B, S, H) with its padding mask `encoder_attention_mask` (B, S), and a key/value cache
        (`past_key_values`, `use_cache`) for generation."""
        _check_num_layers(self.config, num_layers)
        past_key_values = _cache_argument(past_key_values, kwargs)
        # the attention layers see the flag whether it came as an argument or from the config
        if kwargs.get("output_attentions") is None:
            kwargs["output_attentions"] = getattr(self.config, "output_attentions", False)
        if self.config.is_decoder:
            return self._decode(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, num_layers,
                                encoder_hidden_states, encoder_attention_mask, past_key_values, use_cache, **kwargs)
        if encoder_hidden_states is not None:
            raise ValueError("encoder_hidden_states were given to an encoder; build a decoder with is_decoder=True "
                             "and add_cross_attention=True")
        _check_inputs(self.config, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, T, E)
        packed = _packed_sequences(position_ids, embeddings.shape[0])  # (B, T) example of each token, or None
        mask = _bidirectional_mask(self.config, embeddings, attention_mask, packed)
        encoded = self.encoder(embeddings, mask, num_layers, position_ids=position_ids, **kwargs)
        sequence_output = encoded.last_hidden_state
        pooled = None
        if self.pooler is not None:  # (B, H), or (N, H) for N packed examples
            pooled = self.pooler_activation(self.pooler(_first_tokens(sequence_output, packed, position_ids, attention_mask)))
        return BaseModelOutputWithPooling(last_hidden_state=sequence_output, pooler_output=pooled)  # (B, T, H), (B, H)

    def _decode(
        self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, num_layers, encoder_hidden_states,
        encoder_attention_mask, past_key_values, use_cache, **kwargs,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """Decoder mode (our extension): causal self-attention over the cached and new tokens, cross-attention to
        `encoder_hidden_states`; new tokens take the positions after the cached ones."""
        if encoder_hidden_states is not None and not self.config.add_cross_attention:
            raise ValueError("encoder_hidden_states need a cross-attention sublayer: build the decoder with "
                             "add_cross_attention=True (EncoderDecoderModel does)")
        use_cache = getattr(self.config, "use_cache", True) if use_cache is None else use_cache
        if self.training and torch.is_grad_enabled() and self.encoder.layer_applications()[0].gradient_checkpointing:
            # the recomputation in backward would write the cache a second time and read cross-attention keys that
            # were computed without gradient (the encoder would not learn): no cache while checkpointing, as stock
            if use_cache or past_key_values is not None:
                logger.warning_once("activation checkpointing is on while training: the decoder runs without a cache")
            use_cache, past_key_values = False, None
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache(config=self.config)
            if encoder_hidden_states is not None:
                past_key_values = EncoderDecoderCache(past_key_values, DynamicCache(config=self.config))
        if past_key_values is not None:
            _fit_cache(past_key_values, self.config.num_layer_applications)
        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        _check_inputs(self.config, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, past_length)
        if position_ids is None:
            length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
            position_ids = self.embeddings.position_ids[:, past_length : past_length + length]
        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)  # (B, T, E)
        mask = _causal_mask(self.config, embeddings, attention_mask, past_key_values, kwargs["output_attentions"])
        if encoder_attention_mask is not None:
            encoder_attention_mask = _bidirectional_mask(
                self.config, embeddings, encoder_attention_mask, encoder_hidden_states=encoder_hidden_states
            )
        sequence_output = self.encoder(
            embeddings, mask, num_layers, position_ids=position_ids, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, past_key_values=past_key_values, **kwargs,
        ).last_hidden_state  # (B, T, H)
        pooled = self.pooler_activation(self.pooler(sequence_output[:, 0])) if self.pooler is not None else None
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output, pooler_output=pooled, **{_CACHE_FIELD: past_key_values if use_cache else None}
        )


class AlbertRecipesDecoderModel(AlbertRecipesModel):
    """The backbone of `AlbertRecipesForCausalLM`: `AlbertRecipesModel` that also records cross-attention weights
    under `output_attentions`. A class of its own because transformers registers recorded outputs per class, and an
    encoder's output has no cross-attention field (stock ALBERT's tuple outputs must not grow one)."""

    _can_record_outputs = {
        **AlbertRecipesModel._can_record_outputs,
        "cross_attentions": _output_recorder(AlbertRecipesCrossAttention, 1),
    }


class AlbertRecipesMLMHead(nn.Module):
    """H -> E -> vocab. `decoder.weight` (and `decoder.bias` with `bias`) are tied by `_tied_weights_keys` when
    `tie_word_embeddings` is set; untied, `decoder.bias` is the bias used, as in the stock model."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.activation = _activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.LayerNorm(self.activation(self.dense(hidden_states))))  # (..., H) -> (..., vocab)


class AlbertRecipesSOPHead(nn.Module):
    """Sentence-order logits: original (0) vs swapped (1). `num_labels` wide (2 by default) like the stock head, so a
    stock checkpoint saved with any `num_labels` loads."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled_output))  # (B, H) -> (B, num_labels)


def _masked_lm(
    head: AlbertRecipesMLMHead, config: AlbertRecipesConfig, sequence_output: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits and loss of the MLM head; with `sparse_mlm_prediction`, only the labelled positions are decoded."""
    if labels is None:
        return head(sequence_output), None
    if labels.shape != sequence_output.shape[:2]:
        raise ValueError(f"labels must have shape {tuple(sequence_output.shape[:2])}, got {tuple(labels.shape)}")
    if config.sparse_mlm_prediction:
        selected = labels != -100
        logits = head(sequence_output[selected])  # (num_masked, vocab)
        return logits, CrossEntropyLoss()(logits, labels[selected])
    logits = head(sequence_output)  # (B, T, vocab)
    return logits, CrossEntropyLoss()(logits.view(-1, config.vocab_size), labels.view(-1))


@dataclass
class AlbertRecipesForPreTrainingOutput(ModelOutput):
    """
    loss: MLM loss + sentence-order prediction loss, when both label sets are given.
    prediction_logits: (B, T, vocab) MLM scores, or (num_masked, vocab) with `sparse_mlm_prediction` and labels.
    sop_logits: (B, num_labels) scores for original order (0) vs swapped (1); num_labels is 2 unless a checkpoint
        says otherwise.
    mlm_loss, sop_loss: the two terms of `loss`, for logging.
    """

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    sop_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    mlm_loss: torch.Tensor | None = None
    sop_loss: torch.Tensor | None = None


_TIED_MLM_DECODER = {
    "predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
    "predictions.decoder.bias": "predictions.bias",
}


class AlbertRecipesForPreTraining(AlbertRecipesPreTrainedModel):
    _tied_weights_keys = _TIED_MLM_DECODER

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.albert = AlbertRecipesModel(config)
        self.predictions = AlbertRecipesMLMHead(config)
        self.sop_classifier = AlbertRecipesSOPHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.predictions.decoder = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        sentence_order_label: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> AlbertRecipesForPreTrainingOutput:
        r"""
        labels: (B, T) MLM targets, -100 where no prediction is made.
        sentence_order_label: (B,) 0 = segments in original order, 1 = swapped.
        """
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        prediction_logits, mlm_loss = _masked_lm(self.predictions, self.config, outputs.last_hidden_state, labels)
        sop_logits = self.sop_classifier(outputs.pooler_output)  # (B, num_labels)
        sop_loss = None
        if sentence_order_label is not None:
            sop_loss = CrossEntropyLoss()(sop_logits.view(-1, sop_logits.shape[-1]), sentence_order_label.view(-1))
        loss = mlm_loss + sop_loss if mlm_loss is not None and sop_loss is not None else None
        return AlbertRecipesForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            sop_logits=sop_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            mlm_loss=mlm_loss,
            sop_loss=sop_loss,
        )


class AlbertRecipesForMaskedLM(AlbertRecipesPreTrainedModel):
    _tied_weights_keys = _TIED_MLM_DECODER

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.albert = AlbertRecipesModel(config, add_pooling_layer=False)
        self.predictions = AlbertRecipesMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.predictions.decoder = new_embeddings
        self.predictions.bias = new_embeddings.bias

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskedLMOutput:
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits, loss = _masked_lm(self.predictions, self.config, outputs.last_hidden_state, labels)
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class AlbertRecipesForCausalLM(AlbertRecipesPreTrainedModel, GenerationMixin):
    """Left-to-right language model (our extension; ALBERT is an encoder): a causal ALBERT under ALBERT's MLM head,
    so an MLM checkpoint warm-starts the head too. With `add_cross_attention` it is the decoder that
    `EncoderDecoderModel` builds through `AutoModelForCausalLM`."""

    _tied_weights_keys = _TIED_MLM_DECODER

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        if not config.is_decoder:
            logger.warning("AlbertRecipesForCausalLM with is_decoder=False attends to later tokens; set "
                           "is_decoder=True for a left-to-right model")
        self.albert = AlbertRecipesDecoderModel(config, add_pooling_layer=False)
        self.predictions = AlbertRecipesMLMHead(config)
        self.post_init()

    # the same MLM head as the masked LM's
    get_output_embeddings = AlbertRecipesForMaskedLM.get_output_embeddings
    set_output_embeddings = AlbertRecipesForMaskedLM.set_output_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithCrossAttentions:
        r"""
        labels: (B, T) targets aligned with `input_ids`: the loss predicts token t+1 from tokens <= t (shifted
            inside), -100 to ignore. (`EncoderDecoderModel` computes its own loss from `logits`.)
        logits_to_keep: vocabulary logits for the last N positions only (0: all), as generation asks.
        """
        past_key_values = _cache_argument(past_key_values, kwargs)
        if labels is not None:
            use_cache = False
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
            return_dict=True,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state  # (B, T, H)
        logits = self.predictions(hidden_states[:, -logits_to_keep:] if logits_to_keep else hidden_states)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,  # (B, T, vocab)
            **{_CACHE_FIELD: getattr(outputs, _CACHE_FIELD)},
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )


class AlbertRecipesExitClassifiers(nn.Module):
    """PABEE's internal classifiers (arXiv 2006.04152): H -> num_labels after each layer application but the last
    (whose classifier is the usual `classifier`). One (L - 1, num_labels, H) weight, so PEFT can train and save them
    as one module (`modules_to_save=["exit_classifiers"]`)."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(config.num_hidden_layers - 1, config.num_labels, config.hidden_size))
        self.bias = nn.Parameter(torch.zeros(config.num_hidden_layers - 1, config.num_labels))

    def forward(self, pooled_output: torch.Tensor, index: int) -> torch.Tensor:
        return nn.functional.linear(pooled_output, self.weight[index], self.bias[index])  # (B, H) -> (B, num_labels)


@dataclass
class AlbertRecipesSequenceClassifierOutput(SequenceClassifierOutput):
    """exit_layers: (B,) how many layer applications each row ran (set with `early_exit_classifiers`)."""

    exit_layers: torch.LongTensor | None = None


class _PatienceExit:
    """PABEE's exit rule over a whole batch, as the encoder's `exit_policy`. After each application the running rows
    get that application's logits; a row stops once its prediction (argmax; multi-label: the labels above 0;
    regression: the value, within `early_exit_threshold`) has not changed for `patience` consecutive applications,
    and leaves the running batch, so a batch costs what its rows need (the original waits for its slowest row).
    patience 0: no row stops early; `record_all` keeps every application's logits (for the training loss)."""

    def __init__(self, head, batch: int, depth: int, patience: int, record_all: bool, device: torch.device):
        self.head, self.depth, self.patience, self.record_all = head, depth, patience, record_all
        self.rows = torch.arange(batch, device=device)  # the original index of each running row
        self.exit_layers = torch.full((batch,), depth, dtype=torch.long, device=device)
        self.streak = torch.zeros(batch, dtype=torch.long, device=device)
        self.logits, self.previous, self.per_application = None, None, []

    def __call__(self, step: int, hidden_states: torch.Tensor) -> torch.Tensor | None:
        last = step == self.depth - 1
        if self.patience == 0:
            if self.record_all or last:
                self.per_application.append(self.head.application_logits(hidden_states, step))
                self.logits = self.per_application[-1]
            return None
        logits = self.head.application_logits(hidden_states, step)  # (b, num_labels)
        if self.logits is None:
            self.logits = logits.new_zeros(len(self.exit_layers), logits.shape[-1])
        if self.previous is not None:
            self.streak = torch.where(self.head.unchanged(self.previous, logits), self.streak + 1, 0)
        stop = torch.full_like(self.streak, True, dtype=torch.bool) if last else self.streak >= self.patience
        self.logits[self.rows[stop]] = logits[stop]
        self.exit_layers[self.rows[stop]] = step + 1
        keep = ~stop
        self.rows, self.streak, self.previous = self.rows[keep], self.streak[keep], logits[keep]
        return keep


class AlbertRecipesForSequenceClassification(AlbertRecipesPreTrainedModel):
    """Pooled [CLS] -> linear; regression (num_labels=1), single-label or multi-label like the stock model.
    With `early_exit_classifiers` (ours): a classifier after every layer application (PABEE), trained with the
    depth-weighted loss, and early exit at inference with `early_exit_patience`; `exit_layers` says where each row
    stopped."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertRecipesModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.exit_classifiers = AlbertRecipesExitClassifiers(config) if config.early_exit_classifiers else None
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> AlbertRecipesSequenceClassifierOutput:
        r"""labels: (B,) class ids, (B, num_labels) floats for multi-label, (B,) values for regression. In training
        with `early_exit_classifiers` the loss is PABEE's: sum_i i * loss_i / sum_i i over the applications i."""
        self.config.check_early_exit()  # the settings are meant to be changed on a loaded model
        policy = None
        reference = input_ids if input_ids is not None else inputs_embeds
        if self.exit_classifiers is not None and reference is not None:  # (no input: the base model says so)
            if _reads_values(position_ids) and _packed_sequences(position_ids, len(reference)) is not None:
                raise ValueError(
                    "early_exit_classifiers need one example per row; these position_ids restart inside a row "
                    "(packed sequences): unpack them, or use a model without early_exit_classifiers"
                )
            depth = kwargs.get("num_layers") or self.config.num_hidden_layers
            patience = 0 if self.training else self.config.early_exit_patience
            policy = _PatienceExit(self, len(reference), depth, patience, self.training, reference.device)
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            exit_policy=policy,
            **kwargs,
        )
        if policy is None:
            logits = self.classifier(self.dropout(outputs.pooler_output))  # (B, num_labels)
        else:
            logits = policy.logits
        loss = None
        if labels is not None and policy is not None and self.training:
            weights = range(1, len(policy.per_application) + 1)
            losses = (w * self._loss(step_logits, labels) for w, step_logits in zip(weights, policy.per_application))
            loss = sum(losses) / sum(weights)
        elif labels is not None:
            loss = self._loss(logits, labels)
        return AlbertRecipesSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            exit_layers=policy.exit_layers if policy is not None else None,
        )

    def application_logits(self, hidden_states: torch.Tensor, step: int) -> torch.Tensor:
        """Logits of the classifier after layer application `step` (0-based), from its output (B, T, H)."""
        pooled = self.dropout(self.albert.pooler_activation(self.albert.pooler(hidden_states[:, 0])))  # (B, H)
        if step == self.config.num_hidden_layers - 1:
            return self.classifier(pooled)
        return self.exit_classifiers(pooled, step)

    def unchanged(self, previous: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """(B,) whether each row's prediction is the same as the previous application's (PABEE's patience test)."""
        if self.num_labels == 1 or self.config.problem_type == "regression":
            return (logits - previous).abs().amax(-1) <= self.config.early_exit_threshold
        if self.config.problem_type == "multi_label_classification":
            return ((logits > 0) == (previous > 0)).all(-1)
        return logits.argmax(-1) == previous.argmax(-1)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.problem_type is None:
            if self.num_labels == 1:
                self.config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                self.config.problem_type = "single_label_classification"
            else:
                self.config.problem_type = "multi_label_classification"
        if self.config.problem_type == "regression":
            return MSELoss()(logits.squeeze(), labels.squeeze().to(logits.dtype))
        if self.config.problem_type == "multi_label_classification":
            return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))
        if _reads_values(labels):
            bad = labels[(labels != -100) & ((labels < 0) | (labels >= self.num_labels))]
            if bad.numel():
                raise ValueError(
                    f"labels must lie in [0, num_labels={self.num_labels}) (or be -100), got {int(bad[0])}"
                )
        return CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))


class AlbertRecipesForTokenClassification(AlbertRecipesPreTrainedModel):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertRecipesModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout_prob
        self.dropout = nn.Dropout(dropout if dropout is not None else config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TokenClassifierOutput:
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class AlbertRecipesForQuestionAnswering(AlbertRecipesPreTrainedModel):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.albert = AlbertRecipesModel(config, add_pooling_layer=False)
        # a start and an end score per token (the stock model reads num_labels, and runs only when it is 2)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> QuestionAnsweringModelOutput:
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            return_dict=True,
            **kwargs,
        )
        logits = self.qa_outputs(outputs.last_hidden_state)  # (B, T, 2)
        start_logits, end_logits = (part.squeeze(-1).contiguous() for part in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            # positions outside the window (answer cut off by truncation) are ignored, as in the stock model
            ignored = start_logits.size(1)
            start_positions = start_positions.view(-1).clamp(0, ignored)
            end_positions = end_positions.view(-1).clamp(0, ignored)
            loss_fct = CrossEntropyLoss(ignore_index=ignored)
            loss = (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2
        return QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class AlbertRecipesForMultipleChoice(AlbertRecipesPreTrainedModel):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.albert = AlbertRecipesModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MultipleChoiceModelOutput:
        r"""Inputs are (B, num_choices, T); each choice is scored on its own and the scores compared."""
        reference = input_ids if input_ids is not None else inputs_embeds
        if reference is None or reference.dim() < 3:
            raise ValueError("multiple choice inputs must be (batch, num_choices, seq_len)")
        num_choices = reference.shape[1]

        def flat(tensor: torch.Tensor | None) -> torch.Tensor | None:  # (B, C, T, ...) -> (B*C, T, ...)
            return tensor.flatten(0, 1) if tensor is not None else None

        outputs = self.albert(
            flat(input_ids),
            attention_mask=flat(attention_mask),
            token_type_ids=flat(token_type_ids),
            position_ids=flat(position_ids),
            inputs_embeds=flat(inputs_embeds),
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, num_choices)  # (B, C)
        loss = CrossEntropyLoss()(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = [
    "AlbertRecipesPreTrainedModel",
    "AlbertRecipesModel",
    "AlbertRecipesForPreTraining",
    "AlbertRecipesForPreTrainingOutput",
    "AlbertRecipesForMaskedLM",
    "AlbertRecipesDecoderModel",
    "AlbertRecipesForCausalLM",
    "AlbertRecipesForSequenceClassification",
    "AlbertRecipesSequenceClassifierOutput",
    "AlbertRecipesForTokenClassification",
    "AlbertRecipesForQuestionAnswering",
    "AlbertRecipesForMultipleChoice",
]

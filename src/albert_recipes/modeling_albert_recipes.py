"""ALBERT (Lan et al. 2019, arXiv:1909.11942) for Hugging Face Transformers.

Self-contained on purpose: it imports only torch and transformers, so `save_pretrained` can copy it next to the
weights for `trust_remote_code=True`. Parameter names match `transformers`' stock ALBERT, so checkpoints load both
ways. What the paper defines: factorized embeddings (vocab -> E -> H), cross-layer parameter sharing
(`num_hidden_groups` groups of `inner_group_num` layers, applied `num_hidden_layers` times), MLM + sentence-order
prediction heads. What this file adds: activation checkpointing (the stock model refuses it), early input checks
with clear errors, and the opt-in `sparse_mlm_prediction` head.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, logging

from .configuration_albert_recipes import AlbertRecipesConfig

logger = logging.get_logger(__name__)


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
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, heads, T, T)
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = nn.functional.softmax(scores, dim=-1)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (B, T, heads, head_dim)
    return output, weights


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
            inputs_embeds = self.word_embeddings(input_ids)
        seq_length = inputs_embeds.shape[1]
        if position_ids is None:
            position_ids = self.position_ids[:, :seq_length]
        embeddings = inputs_embeds + self.position_embeddings(position_ids)
        if token_type_ids is None:
            # segment 0 everywhere: add its single row instead of looking up a (B, T) index tensor
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))  # (B, T, E)


class AlbertRecipesAttention(nn.Module):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.config = config
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
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
        attention_mask: torch.Tensor | None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, seq_len, _ = hidden_states.shape
        heads_shape = (batch, seq_len, -1, self.head_dim)
        query = self.query(hidden_states).view(heads_shape).transpose(1, 2)  # (B, heads, T, head_dim)
        key = self.key(hidden_states).view(heads_shape).transpose(1, 2)
        value = self.value(hidden_states).view(heads_shape).transpose(1, 2)

        attention: Callable = eager_attention_forward
        # only the eager kernel materialises the weights, so a request for them routes the call there
        if self.config._attn_implementation != "eager" and not output_attentions:
            attention = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        context, weights = attention(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout.p if self.training else 0.0,
            scaling=self.scaling,
        )
        context = context.reshape(batch, seq_len, -1)  # (B, T, H)
        output = self.LayerNorm(hidden_states + self.output_dropout(self.dense(context)))
        return output, weights


class AlbertRecipesLayer(GradientCheckpointingLayer):
    """Post-LN self-attention + feed-forward; one instance is reused at several depths (parameter sharing)."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.attention = AlbertRecipesAttention(config)
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.activation = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attention_output, weights = self.attention(hidden_states, attention_mask, output_attentions)
        ffn_output = self.ffn_output(self.activation(self.ffn(attention_output)))
        hidden_states = self.full_layer_layer_norm(self.dropout(ffn_output) + attention_output)
        return hidden_states, weights


class AlbertRecipesLayerGroup(nn.Module):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList([AlbertRecipesLayer(config) for _ in range(config.inner_group_num)])


class AlbertRecipesTransformer(nn.Module):
    """Projects E -> H once, then applies the shared layer groups `num_hidden_layers` times."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.config = config
        self.embedding_hidden_mapping_in = nn.Linear(config.embedding_size, config.hidden_size)
        self.albert_layer_groups = nn.ModuleList(
            [AlbertRecipesLayerGroup(config) for _ in range(config.num_hidden_groups)]
        )

    def forward(
        self,
        embeddings: torch.Tensor,
        attention_mask: torch.Tensor | None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutput:
        hidden_states = self.embedding_hidden_mapping_in(embeddings)  # (B, T, E) -> (B, T, H)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = () if output_attentions else None
        layers_per_group = self.config.num_hidden_layers // self.config.num_hidden_groups
        for depth in range(self.config.num_hidden_layers):
            group = self.albert_layer_groups[depth // layers_per_group]
            for layer in group.albert_layers:
                hidden_states, weights = layer(hidden_states, attention_mask, output_attentions)
                if output_hidden_states:
                    all_hidden_states += (hidden_states,)
                if output_attentions:
                    all_attentions += (weights,)
        return BaseModelOutput(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, attentions=all_attentions
        )


# Written into every saved config so that any Auto class loads the folder with `trust_remote_code=True`.
AUTO_MAP = {
    "AutoConfig": "configuration_albert_recipes.AlbertRecipesConfig",
    "AutoModel": "modeling_albert_recipes.AlbertRecipesModel",
    "AutoModelForPreTraining": "modeling_albert_recipes.AlbertRecipesForPreTraining",
    "AutoModelForMaskedLM": "modeling_albert_recipes.AlbertRecipesForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_albert_recipes.AlbertRecipesForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_albert_recipes.AlbertRecipesForTokenClassification",
    "AutoModelForQuestionAnswering": "modeling_albert_recipes.AlbertRecipesForQuestionAnswering",
    "AutoModelForMultipleChoice": "modeling_albert_recipes.AlbertRecipesForMultipleChoice",
}


class AlbertRecipesPreTrainedModel(PreTrainedModel):
    config_class = AlbertRecipesConfig
    base_model_prefix = "albert"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AlbertRecipesLayer"]
    _supports_sdpa = True
    _supports_attention_backend = True

    def __init__(self, config: AlbertRecipesConfig, *inputs, **kwargs):
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

    def _return(self, output: ModelOutput, return_dict: bool | None) -> ModelOutput | tuple:
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)
        return output if return_dict else output.to_tuple()


def _check_inputs(
    config: AlbertRecipesConfig,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    token_type_ids: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
) -> None:
    """Turn the usual input mistakes into a `ValueError` before any kernel runs (torch would give an index error)."""
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
    if shape[1] > config.max_position_embeddings:
        raise ValueError(
            f"sequence length {shape[1]} exceeds max_position_embeddings={config.max_position_embeddings}; "
            "truncate the input"
        )
    for name, tensor in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
        if tensor is not None and tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must have the shape of the input {shape}, got {tuple(tensor.shape)}")
    if position_ids is not None and (position_ids.dim() != 2 or position_ids.shape[-1] != shape[1]):
        raise ValueError(f"position_ids must be (batch or 1, {shape[1]}), got {tuple(position_ids.shape)}")
    if torch.compiler.is_compiling():  # value checks would force a graph break
        return
    for name, tensor, upper in (
        ("input_ids", input_ids, config.vocab_size),
        ("token_type_ids", token_type_ids, config.type_vocab_size),
        ("position_ids", position_ids, config.max_position_embeddings),
    ):
        if tensor is not None and tensor.numel() and (tensor.min() < 0 or tensor.max() >= upper):
            raise ValueError(
                f"{name} must lie in [0, {upper}), got values in [{int(tensor.min())}, {int(tensor.max())}]"
            )


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

    def _extended_attention_mask(self, attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        if attention_mask is None:
            return None
        if self.config._attn_implementation != "eager" and not torch.compiler.is_compiling():
            # sdpa takes its fast path only without a mask, so drop one that hides nothing
            if bool(attention_mask.all()):
                return None
        # additive mask, broadcast over heads and query positions: (B, T) -> (B, 1, 1, T)
        blocked = attention_mask[:, None, None, :] == 0
        return torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill(
            blocked, torch.finfo(dtype).min
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling | tuple:
        _check_inputs(self.config, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        if output_attentions is None:
            output_attentions = getattr(self.config, "output_attentions", False)
        if output_hidden_states is None:
            output_hidden_states = getattr(self.config, "output_hidden_states", False)

        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        mask = self._extended_attention_mask(attention_mask, embeddings.dtype)
        encoded = self.encoder(embeddings, mask, output_attentions, output_hidden_states)
        sequence_output = encoded.last_hidden_state  # (B, T, H)
        pooled = self.pooler_activation(self.pooler(sequence_output[:, 0])) if self.pooler is not None else None
        output = BaseModelOutputWithPooling(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return self._return(output, return_dict)


class AlbertRecipesMLMHead(nn.Module):
    """H -> E -> vocab; the decoder is tied to the input embeddings."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.activation = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.LayerNorm(self.activation(self.dense(hidden_states))))


class AlbertRecipesSOPHead(nn.Module):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        # always two classes (original / swapped); the stock head reads num_labels, which only agrees at its default
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled_output))


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
    sop_logits: (B, 2) scores for original order (0) vs swapped (1).
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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        sentence_order_label: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> AlbertRecipesForPreTrainingOutput | tuple:
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
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        prediction_logits, mlm_loss = _masked_lm(self.predictions, self.config, outputs.last_hidden_state, labels)
        sop_logits = self.sop_classifier(outputs.pooler_output)
        sop_loss = None
        if sentence_order_label is not None:
            sop_loss = CrossEntropyLoss()(sop_logits.view(-1, 2), sentence_order_label.view(-1))
        loss = mlm_loss + sop_loss if mlm_loss is not None and sop_loss is not None else None
        output = AlbertRecipesForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            sop_logits=sop_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            mlm_loss=mlm_loss,
            sop_loss=sop_loss,
        )
        return self._return(output, return_dict)


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

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits, loss = _masked_lm(self.predictions, self.config, outputs.last_hidden_state, labels)
        output = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._return(output, return_dict)


class AlbertRecipesForSequenceClassification(AlbertRecipesPreTrainedModel):
    """Pooled [CLS] -> linear; regression (num_labels=1), single-label or multi-label like the stock model."""

    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertRecipesModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))  # (B, num_labels)
        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss = MSELoss()(logits.squeeze(), labels.squeeze().to(logits.dtype))
            elif self.config.problem_type == "single_label_classification":
                bad = labels[(labels != -100) & ((labels < 0) | (labels >= self.num_labels))]
                if bad.numel():
                    raise ValueError(
                        f"labels must lie in [0, num_labels={self.num_labels}) (or be -100), got {int(bad[0])}"
                    )
                loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = BCEWithLogitsLoss()(logits, labels.to(logits.dtype))
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._return(output, return_dict)


class AlbertRecipesForTokenClassification(AlbertRecipesPreTrainedModel):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.albert = AlbertRecipesModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout_prob
        self.dropout = nn.Dropout(dropout if dropout is not None else config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # (B, T, num_labels)
        loss = None
        if labels is not None:
            loss = CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._return(output, return_dict)


class AlbertRecipesForQuestionAnswering(AlbertRecipesPreTrainedModel):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.albert = AlbertRecipesModel(config, add_pooling_layer=False)
        # a start and an end score per token (the stock model reads num_labels, which agrees at its default of 2)
        self.qa_outputs = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> QuestionAnsweringModelOutput | tuple:
        outputs = self.albert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
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
        output = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return self._return(output, return_dict)


class AlbertRecipesForMultipleChoice(AlbertRecipesPreTrainedModel):
    def __init__(self, config: AlbertRecipesConfig):
        super().__init__(config)
        self.albert = AlbertRecipesModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.LongTensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MultipleChoiceModelOutput | tuple:
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
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, num_choices)  # (B, C)
        loss = CrossEntropyLoss()(logits, labels) if labels is not None else None
        output = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )
        return self._return(output, return_dict)


__all__ = [
    "AlbertRecipesPreTrainedModel",
    "AlbertRecipesModel",
    "AlbertRecipesForPreTraining",
    "AlbertRecipesForPreTrainingOutput",
    "AlbertRecipesForMaskedLM",
    "AlbertRecipesForSequenceClassification",
    "AlbertRecipesForTokenClassification",
    "AlbertRecipesForQuestionAnswering",
    "AlbertRecipesForMultipleChoice",
]

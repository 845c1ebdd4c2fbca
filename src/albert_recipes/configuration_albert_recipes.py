"""ALBERT configuration (model_type `albert_recipes`).

Self-contained on purpose: it imports only `transformers`, so `save_pretrained` can copy it next to the weights and
the folder loads with `trust_remote_code=True` where `albert_recipes` is not installed.

Every field of `transformers.AlbertConfig` is here with the same meaning and default, so checkpoints move freely
between the stock classes and ours. Fields after the marked line are this project's extensions; at their defaults
the model computes exactly what the paper's (and the stock) ALBERT computes.

Like the stock config, creating or editing a config accepts any values (transformers' own config tests build
inconsistent ones on purpose, and a config may pass through inconsistent states while it is edited field by field);
`check()` raises the clear errors, and every model built from the config (and `from_preset`) calls it.
"""

from __future__ import annotations

from transformers import PretrainedConfig
from transformers.activations import ACT2FN

_V2 = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "hidden_act": "gelu_new"}
_V1 = {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu"}
_SIZES = {
    # the sizes of Table 1 in Lan et al. (2019); all use E=128 and share every layer (one group)
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096},
    "xlarge": {"hidden_size": 2048, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 8192},
    "xxlarge": {"hidden_size": 4096, "num_hidden_layers": 12, "num_attention_heads": 64, "intermediate_size": 16384},
}
PRESETS: dict[str, dict] = {
    **{name: {**size, **_V2} for name, size in _SIZES.items()},
    **{f"{name}-v2": {**size, **_V2} for name, size in _SIZES.items()},
    **{f"{name}-v1": {**size, **_V1} for name, size in _SIZES.items()},
    # not from the paper: small enough to pretrain on a laptop CPU in minutes
    "tiny": {
        "embedding_size": 128,
        "hidden_size": 312,
        "num_hidden_layers": 4,
        "num_attention_heads": 12,
        "intermediate_size": 1248,
        **_V2,
    },
}


class AlbertRecipesConfig(PretrainedConfig):
    r"""
    Configuration of an ALBERT model. The defaults give ALBERT-xxlarge, like `transformers.AlbertConfig`;
    `AlbertRecipesConfig.from_preset("base")` gives the paper's other sizes.

    Args:
        vocab_size: size of the (SentencePiece) vocabulary.
        embedding_size: E, the factorized embedding width; the embeddings are projected from E to `hidden_size`.
        hidden_size: H, the width of the transformer layers.
        num_hidden_layers: how many times a layer group is applied (the depth).
        num_hidden_groups: number of distinct parameter groups; the layers are split evenly among them.
        num_attention_heads: attention heads; must divide `hidden_size`.
        intermediate_size: width of the feed-forward layer.
        inner_group_num: number of distinct layers (attention + feed-forward) inside each group.
        hidden_act: activation name from `transformers.activations.ACT2FN`.
        hidden_dropout_prob, attention_probs_dropout_prob, classifier_dropout_prob: dropout rates (v2: 0).
        max_position_embeddings: longest sequence the position embeddings cover.
        type_vocab_size: number of segment (token type) ids.
        initializer_range: std of the normal initializer.
        layer_norm_eps: LayerNorm epsilon.
        sparse_mlm_prediction (extension): when the masked-LM heads get `labels`, compute the vocabulary logits only
            at the labelled (masked) positions; `prediction_logits`/`logits` are then `(num_masked, vocab_size)`.
            Saves most of the head's time and memory in pretraining; the loss is identical.
        is_decoder (extension): causal self-attention, for `AlbertRecipesForCausalLM` and seq2seq decoders.
        add_cross_attention (extension, needs `is_decoder`): a cross-attention sublayer over `encoder_hidden_states`,
            one per layer of a group and so shared across depth like the rest; the decoder of an `EncoderDecoderModel`.
        use_cache: decoders return a key/value cache for generation.

    Cross-layer extensions (ours, not the paper's; all off by default, and off they change nothing). A "layer
    application" is one of the `num_hidden_layers` steps in depth (one pass through a group's `inner_group_num`
    layers):
        residual_attention: RealFormer (He et al. 2020, arXiv 2012.11747): each layer adds the raw (pre-mask,
            pre-softmax) attention scores of the layer run before it to its own; the mask is applied after the sum
            and the unmasked sum is passed on. No new parameters. Needs the scores, so it always runs the eager
            attention kernel (with `sdpa`/flash configured, it warns once and uses eager).
        depth_weighted_average: DenseFormer (Pagliardini et al. 2024, arXiv 2402.02622): the input of application
            i + 1 is a learned weighted sum of the projected embeddings and the outputs of applications 1..i,
            initialised to the identity (weight 1 on the newest output), so it starts as the plain model.
        layerdrop: LayerDrop (Fan et al. 2019, arXiv 1909.11556): in training, skip each whole application with this
            probability, so the model stays accurate at the shallower depths the `num_layers` forward keyword (any
            model class) runs. In [0, 1).
        early_exit_classifiers: PABEE (Zhou et al. 2020, arXiv 2006.04152), sequence classification only: a
            classifier after every application (the last one is the usual `classifier`), trained with PABEE's
            depth-weighted loss.
        early_exit_patience: at inference, a row stops once its prediction has not changed for this many consecutive
            applications; stopped rows leave the running batch. 0 = always full depth. Needs
            `early_exit_classifiers`.
        early_exit_threshold: regression (`num_labels=1`): a prediction counts as unchanged when it moved by at most
            this much. Non-negative.
    """

    model_type = "albert_recipes"

    def __init__(
        self,
        vocab_size: int = 30000,
        embedding_size: int = 128,
        hidden_size: int = 4096,
        num_hidden_layers: int = 12,
        num_hidden_groups: int = 1,
        num_attention_heads: int = 64,
        intermediate_size: int = 16384,
        inner_group_num: int = 1,
        hidden_act: str = "gelu_new",
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        classifier_dropout_prob: float = 0.1,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 2,
        eos_token_id: int | None = 3,
        tie_word_embeddings: bool = True,
        # --- extensions (not in the paper; defaults keep the paper's model) ---
        sparse_mlm_prediction: bool = False,
        is_decoder: bool = False,
        add_cross_attention: bool = False,
        use_cache: bool = True,
        residual_attention: bool = False,
        depth_weighted_average: bool = False,
        layerdrop: float = 0.0,
        early_exit_classifiers: bool = False,
        early_exit_patience: int = 0,
        early_exit_threshold: float = 0.0,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_hidden_groups = num_hidden_groups
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.inner_group_num = inner_group_num
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.classifier_dropout_prob = classifier_dropout_prob
        self.sparse_mlm_prediction = sparse_mlm_prediction
        self.is_decoder = is_decoder
        self.add_cross_attention = add_cross_attention
        self.use_cache = use_cache
        self.residual_attention = residual_attention
        self.depth_weighted_average = depth_weighted_average
        self.layerdrop = layerdrop
        self.early_exit_classifiers = early_exit_classifiers
        self.early_exit_patience = early_exit_patience
        self.early_exit_threshold = early_exit_threshold
        super().__init__(
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings,
            **kwargs,
        )

    @property
    def num_layer_applications(self) -> int:
        """How many times a layer runs in a forward pass; the model returns one hidden state more than this."""
        return self.num_hidden_layers * self.inner_group_num

    def check(self) -> None:
        """Raise a `ValueError` naming the bad value and what is allowed; called where a model is built.

        Not named `validate_*`: transformers' strict configs run such methods at creation and at save, which would
        reject configs the stock `AlbertConfig` accepts.
        """
        for name in (
            "vocab_size",
            "embedding_size",
            "hidden_size",
            "num_hidden_layers",
            "num_hidden_groups",
            "num_attention_heads",
            "intermediate_size",
            "inner_group_num",
            "max_position_embeddings",
            "type_vocab_size",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.num_hidden_layers % self.num_hidden_groups != 0:
            raise ValueError(
                f"num_hidden_layers ({self.num_hidden_layers}) must be divisible by num_hidden_groups "
                f"({self.num_hidden_groups})"
            )
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"hidden_act {self.hidden_act!r} is unknown; choose one of {sorted(ACT2FN)}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout_prob"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if not self.initializer_range > 0:
            raise ValueError(f"initializer_range must be positive, got {self.initializer_range!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be in [0, vocab_size={self.vocab_size})")
        if getattr(self, "add_cross_attention", False) and not getattr(self, "is_decoder", False):
            raise ValueError("add_cross_attention=True needs is_decoder=True: cross-attention belongs to the decoder of "
                             "a seq2seq model (EncoderDecoderModel sets both)")
        if not 0.0 <= self.layerdrop < 1.0:
            raise ValueError(f"layerdrop must be in [0, 1) (the probability of skipping an application), "
                             f"got {self.layerdrop!r}")
        self.check_early_exit()

    def check_early_exit(self) -> None:
        """The early-exit settings, checked again at every forward since they are meant to be changed on a loaded
        model (`model.config.early_exit_patience = 2`)."""
        patience = self.early_exit_patience
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
            raise ValueError(f"early_exit_patience must be a non-negative integer (0 = always full depth), "
                             f"got {patience!r}")
        if patience > 0 and not self.early_exit_classifiers:
            raise ValueError(f"early_exit_patience={patience} needs early_exit_classifiers=True (a classifier after "
                             "every layer application, trained with them)")
        if not self.early_exit_threshold >= 0:
            raise ValueError(f"early_exit_threshold must be >= 0, got {self.early_exit_threshold!r}")

    @classmethod
    def get_config_dict(cls, *args, **kwargs):
        config_dict, kwargs = super().get_config_dict(*args, **kwargs)
        if config_dict.get("model_type") == "albert":  # a stock checkpoint: same fields with the same meaning
            config_dict = {**config_dict, "model_type": cls.model_type}
        return config_dict, kwargs

    @classmethod
    def from_preset(cls, name: str, **overrides) -> AlbertRecipesConfig:
        """A named size: base/large/xlarge/xxlarge (v2, no dropout; `-v1` for the v1 dropout), or `tiny`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        config = cls(**{**PRESETS[name], **overrides})
        config.check()  # a preset is built to make a model: report bad overrides now, not at the first model
        return config


__all__ = ["AlbertRecipesConfig", "PRESETS"]

"""albert_recipes: ALBERT (Lan et al. 2019) as a first-class Hugging Face Transformers extension.

Importing the package registers `albert_recipes` with `AutoConfig` and every matching `AutoModel*` class, and marks
the classes for `register_for_auto_class`, so `save_pretrained` writes `auto_map` and copies the two self-contained
model files; such a folder loads with `trust_remote_code=True` where this package is not installed. With PEFT
installed, it also registers ALBERT's default LoRA target modules.
"""

import transformers

from . import modeling_albert_recipes
from .configuration_albert_recipes import PRESETS, AlbertRecipesConfig
from .lora import register_peft_defaults
from .modeling_albert_recipes import (
    AlbertRecipesDecoderModel,
    AlbertRecipesForCausalLM,
    AlbertRecipesForMaskedLM,
    AlbertRecipesForMultipleChoice,
    AlbertRecipesForPreTraining,
    AlbertRecipesForPreTrainingOutput,
    AlbertRecipesForQuestionAnswering,
    AlbertRecipesForSequenceClassification,
    AlbertRecipesForTokenClassification,
    AlbertRecipesModel,
    AlbertRecipesPreTrainedModel,
)

__version__ = "0.1.0"


def _register() -> None:
    """One source of truth: the modeling file's AUTO_MAP, also written into every saved config."""
    transformers.AutoConfig.register(AlbertRecipesConfig.model_type, AlbertRecipesConfig, exist_ok=True)
    AlbertRecipesConfig.register_for_auto_class()
    for auto_name, target in modeling_albert_recipes.AUTO_MAP.items():
        if auto_name == "AutoConfig":
            continue
        model_class = getattr(modeling_albert_recipes, target.rsplit(".", 1)[-1])
        getattr(transformers, auto_name).register(AlbertRecipesConfig, model_class, exist_ok=True)
        model_class.register_for_auto_class(auto_name)


_register()
register_peft_defaults()  # LoraConfig(task_type=...) without target_modules works for albert_recipes (if peft is installed)

__all__ = ["PRESETS", "AlbertRecipesConfig", "register_peft_defaults", *modeling_albert_recipes.__all__]

"""transformers' common model and config tests (vendored, 5.24.0) run on our ALBERT classes.

Built like transformers' own ALBERT test (tests/models/albert/test_modeling_albert.py): the same tiny sizes, the same
head checks, `ModelTesterMixin` + `ConfigTester(hidden_size=37)`. Its `PipelineTesterMixin` is left out: those tests
load tiny checkpoints from the Hub (hf-internal-testing), and tests/test_auto_integration.py covers our pipelines.

`ALBERT_CONFORMANCE_CLASSES=stock pytest tests/transformers_vendored` runs the very same tests on the stock
`transformers` ALBERT classes, to compare the two results.
"""

from __future__ import annotations

import os
import unittest
from unittest import mock

import pytest
import torch
import transformers

if not transformers.__version__.startswith("5.24."):
    pytest.skip(
        f"the vendored testers are pinned to transformers 5.24.x; this is {transformers.__version__}",
        allow_module_level=True,
    )

import transformers.models.auto.modeling_auto as modeling_auto  # noqa: E402

import albert_recipes  # noqa: E402
from albert_recipes import modeling_albert_recipes  # noqa: E402

from .test_configuration_common import ConfigTester  # noqa: E402
from .test_modeling_common import ModelTesterMixin, ids_tensor, random_attention_mask  # noqa: E402

STOCK = os.environ.get("ALBERT_CONFORMANCE_CLASSES", "ours") == "stock"
HEADS = ["", "ForPreTraining", "ForMaskedLM", "ForMultipleChoice", "ForSequenceClassification",
         "ForTokenClassification", "ForQuestionAnswering"]  # fmt: skip
if STOCK:
    CONFIG = transformers.AlbertConfig
    CLASSES = {head: getattr(transformers, "Albert" + (head or "Model")) for head in HEADS}
else:
    CONFIG = albert_recipes.AlbertRecipesConfig
    CLASSES = {head: getattr(albert_recipes, "AlbertRecipes" + (head or "Model")) for head in HEADS}

# The common tester picks inputs and labels per head by class *name* in transformers' `*_MAPPING_NAMES`, which list
# in-library models only; enter ours there (for this module's tests) as transformers would for an in-library model.
_NAME_MAPS = {
    "AutoModel": "MODEL_MAPPING_NAMES",
    "AutoModelForPreTraining": "MODEL_FOR_PRETRAINING_MAPPING_NAMES",
    "AutoModelForMaskedLM": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "AutoModelForSequenceClassification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForTokenClassification": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForQuestionAnswering": "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
    "AutoModelForMultipleChoice": "MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES",
}


def _register_our_class_names() -> list:
    patches = []
    for auto_name, target in modeling_albert_recipes.AUTO_MAP.items():
        if auto_name in _NAME_MAPS:
            names = getattr(modeling_auto, _NAME_MAPS[auto_name])
            class_name = target.rsplit(".", 1)[-1]
            patches.append(mock.patch.dict(names, {CONFIG.model_type: class_name}))
    return patches


class AlbertRecipesModelTester:
    """Tiny configs and inputs, the sizes of transformers' ALBERT tester (num_hidden_groups == num_hidden_layers)."""

    def __init__(self, parent, batch_size=2, seq_length=7, num_labels=3, num_choices=4):
        self.parent = parent
        self.batch_size, self.seq_length = batch_size, seq_length
        self.is_training = True
        self.vocab_size, self.embedding_size, self.hidden_size = 32, 8, 16
        self.num_hidden_layers = self.num_hidden_groups = 2
        self.num_attention_heads, self.intermediate_size = 4, 20
        self.max_position_embeddings, self.type_vocab_size = 8, 2
        self.type_sequence_label_size = 2
        self.num_labels, self.num_choices = num_labels, num_choices

    def get_config(self):
        return CONFIG(
            vocab_size=self.vocab_size,
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_hidden_groups=self.num_hidden_groups,
            inner_group_num=1,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act="gelu",
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            initializer_range=0.02,
        )

    def prepare_config_and_inputs(self):
        shape = [self.batch_size, self.seq_length]
        inputs = {
            "input_ids": ids_tensor(shape, self.vocab_size),
            "token_type_ids": ids_tensor(shape, self.type_vocab_size),
            "attention_mask": random_attention_mask(shape),
        }
        labels = {
            "sequence": ids_tensor([self.batch_size], self.type_sequence_label_size),
            "token": ids_tensor(shape, self.num_labels),
            "choice": ids_tensor([self.batch_size], self.num_choices),
        }
        return self.get_config(), inputs, labels

    def prepare_config_and_inputs_for_common(self):
        config, inputs, _ = self.prepare_config_and_inputs()
        return config, inputs

    def run_head(self, head, config, inputs, **labels):
        model = CLASSES[head](config).eval()
        with torch.no_grad():
            return model(**inputs, **labels)


class AlbertRecipesModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = tuple(CLASSES.values())

    @classmethod
    def setUpClass(cls):
        cls._name_patches = [] if STOCK else _register_our_class_names()
        for patch in cls._name_patches:
            patch.start()

    @classmethod
    def tearDownClass(cls):
        for patch in cls._name_patches:
            patch.stop()

    def setUp(self):
        self.model_tester = AlbertRecipesModelTester(self)
        self.config_tester = ConfigTester(self, config_class=CONFIG, hidden_size=37)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is CLASSES["ForPreTraining"]:  # MLM labels and the sentence-order label
            b, t = self.model_tester.batch_size, self.model_tester.seq_length
            inputs_dict["labels"] = torch.zeros((b, t), dtype=torch.long)
            inputs_dict["sentence_order_label"] = torch.zeros(b, dtype=torch.long)
        return inputs_dict

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        config, inputs, _ = self.model_tester.prepare_config_and_inputs()
        tester = self.model_tester
        without_mask = {k: inputs[k] for k in ("input_ids", "token_type_ids")}
        for variant in (inputs, without_mask, {"input_ids": inputs["input_ids"]}):
            result = tester.run_head("", config, variant)
            self.assertEqual(result.last_hidden_state.shape, (tester.batch_size, tester.seq_length, tester.hidden_size))
            self.assertEqual(result.pooler_output.shape, (tester.batch_size, tester.hidden_size))

    def test_for_pretraining(self):
        config, inputs, labels = self.model_tester.prepare_config_and_inputs()
        tester = self.model_tester
        result = tester.run_head(
            "ForPreTraining", config, inputs, labels=labels["token"], sentence_order_label=labels["sequence"]
        )
        self.assertEqual(result.prediction_logits.shape, (tester.batch_size, tester.seq_length, tester.vocab_size))
        self.assertEqual(result.sop_logits.shape, (tester.batch_size, config.num_labels))

    def test_for_masked_lm(self):
        config, inputs, labels = self.model_tester.prepare_config_and_inputs()
        tester = self.model_tester
        result = tester.run_head("ForMaskedLM", config, inputs, labels=labels["token"])
        self.assertEqual(result.logits.shape, (tester.batch_size, tester.seq_length, tester.vocab_size))

    def test_for_multiple_choice(self):
        config, inputs, labels = self.model_tester.prepare_config_and_inputs()
        tester = self.model_tester
        config.num_choices = tester.num_choices
        choices = {k: v.unsqueeze(1).expand(-1, tester.num_choices, -1).contiguous() for k, v in inputs.items()}
        result = tester.run_head("ForMultipleChoice", config, choices, labels=labels["choice"])
        self.assertEqual(result.logits.shape, (tester.batch_size, tester.num_choices))

    def test_for_question_answering(self):
        config, inputs, labels = self.model_tester.prepare_config_and_inputs()
        tester = self.model_tester
        positions = labels["sequence"]
        result = tester.run_head(
            "ForQuestionAnswering", config, inputs, start_positions=positions, end_positions=positions
        )
        self.assertEqual(result.start_logits.shape, (tester.batch_size, tester.seq_length))
        self.assertEqual(result.end_logits.shape, (tester.batch_size, tester.seq_length))

    def test_for_sequence_classification(self):
        config, inputs, labels = self.model_tester.prepare_config_and_inputs()
        tester = self.model_tester
        config.num_labels = tester.num_labels
        result = tester.run_head("ForSequenceClassification", config, inputs, labels=labels["sequence"])
        self.assertEqual(result.logits.shape, (tester.batch_size, tester.num_labels))

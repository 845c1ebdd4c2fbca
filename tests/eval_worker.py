"""Run by tests/test_training.py, alone and under `accelerate launch` with 2 gloo processes: held-out pretraining
metrics of one fixed toy model over prepared DataLoaders of 1, 5 and 7 examples (batch 2 per process: uneven
shards, and a set smaller than the number of processes). Writes the summed statistics as JSON (main process)."""

from __future__ import annotations

import json
import sys

import torch
from accelerate import Accelerator
from transformers import AutoTokenizer

from albert_recipes import AlbertRecipesConfig, AlbertRecipesForPreTraining
from albert_recipes.masking import NgramMaskingCollator
from albert_recipes.pretraining_metrics import evaluate

SIZES = (1, 5, 7)


def examples(tokenizer, count: int) -> list[dict]:
    generator = torch.Generator().manual_seed(count)
    rows = []
    for i in range(count):
        a, b = torch.randint(5, len(tokenizer), (2, 6 + i % 4), generator=generator).tolist()
        rows.append({"input_ids": [tokenizer.cls_token_id, *a, tokenizer.sep_token_id, *b, tokenizer.sep_token_id],
                     "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1), "sentence_order_label": i % 2,
                     "sop_random_document": int(i % 3 == 0), "example_id": 1000 + i})
    return rows


def main(tokenizer_dir: str, out_file: str) -> None:
    accelerator = Accelerator(cpu=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = AlbertRecipesConfig.from_preset("tiny", embedding_size=8, hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=32, vocab_size=len(tokenizer),
                                             classifier_dropout_prob=0.0)
    model = accelerator.prepare(AlbertRecipesForPreTraining(config))
    collator = NgramMaskingCollator(tokenizer, seed=1, max_predictions_per_seq=3)
    results = {}
    for size in SIZES:
        loader = torch.utils.data.DataLoader(examples(tokenizer, size), batch_size=2, collate_fn=collator)
        metrics, sums = evaluate(model, accelerator.prepare(loader), accelerator, unigram_token_id=7)
        results[size] = {"metrics": metrics, "sums": sums.tolist()}
    if accelerator.is_main_process:
        with open(out_file, "w", encoding="utf-8") as f:
            json.dump(results, f)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    main(*sys.argv[1:3])

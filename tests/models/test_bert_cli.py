"""``capreolus-opt train gin_configs/bert_reranker_smoke.gin`` on a tiny preset and TSV files,
through the real command line (extra `hub`)."""

from __future__ import annotations

import pytest

pytest.importorskip("keras_hub")
pytest.importorskip("tokenizers")

from capreolus_opt import load_runs
from tests.bert_presets import make_tiny_preset
from tests.cli_helpers import ROOT, run_cli

BERT_SMOKE = str(ROOT / "gin_configs" / "bert_reranker_smoke.gin")
BERT_LAYERWISE = str(ROOT / "gin_configs" / "bert_reranker_layerwise.gin")


def _write_tsv(tmp_path):
    train = [f"deer park {i}\tthe deer park {i} relevant\tx y z irrelevant {i}" for i in range(12)]
    dev = [
        f"query {i}\tthe query {i} document relevant\t{1 if j == 0 else 0}"
        if j == 0
        else f"query {i}\tkeras tensorflow {j} x\t0"
        for i in range(4)
        for j in range(3)
    ]
    (tmp_path / "train.tsv").write_text("\n".join(train) + "\n")
    (tmp_path / "dev.tsv").write_text("\n".join(dev) + "\n")


def _bindings(tmp_path, preset):
    return [
        "--gin_param",
        f'BERT_PRESET = "{preset}"',
        "--gin_param",
        f'TsvRankingData.train_path = "{tmp_path / "train.tsv"}"',
        "--gin_param",
        f'TsvRankingData.eval_path = "{tmp_path / "dev.tsv"}"',
    ]


@pytest.mark.slow
def test_bert_smoke_trains_through_the_cli_with_encoder_and_head_rates(tmp_path):
    preset = make_tiny_preset(tmp_path / "preset", max_sequence_length=32)
    _write_tsv(tmp_path)
    proc = run_cli(
        "train",
        BERT_SMOKE,
        "--workdir",
        str(tmp_path / "work"),
        "--observer",
        f"file://{tmp_path / 'runs'}",
        *_bindings(tmp_path, preset),
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = load_runs(str(tmp_path / "runs"))
    assert run.status == "COMPLETED"
    assert set(run.result) >= {"mrr@10", "ndcg@10"}
    lrs = {row["variable"]: row["lr"] for row in run.group_table}
    groups = {row["variable"]: row["group"] for row in run.group_table}
    # Named groups: the head and the encoder (everything else); "default" holds nothing.
    assert set(groups.values()) == {"head", "encoder"} and groups["head/kernel"] == "head"
    assert groups["pooled_dense/kernel"] == groups["token_embedding/embeddings"] == "encoder"
    assert lrs["head/kernel"] == pytest.approx(1e-3)
    assert lrs["transformer_layer_1/self_attention_layer/query/kernel"] == pytest.approx(2e-5)
    assert lrs["token_embedding/embeddings"] == pytest.approx(2e-5)
    loss = run.metrics["train/loss"]
    assert list(loss.steps) == [2, 4] and all(v == v and v > 0 for v in loss.values)


@pytest.mark.slow
def test_bert_configs_say_what_is_missing(tmp_path):
    proc = run_cli("groups", BERT_SMOKE)
    assert proc.returncode == 2
    # Every %gin.REQUIRED left unset is refused when the config is parsed, naming the binding.
    assert "is %gin.REQUIRED and no file or --gin_param gives it a value" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Data given, preset not: the message names the binding that reads BERT_PRESET.
    _write_tsv(tmp_path)
    data = _bindings(tmp_path, "unused")[2:]
    proc = run_cli("groups", BERT_SMOKE, *data)
    assert proc.returncode == 2
    assert "preset is %gin.REQUIRED" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_layerwise_variant_groups_by_depth(tmp_path):
    preset = make_tiny_preset(tmp_path / "preset", max_sequence_length=32)
    _write_tsv(tmp_path)
    proc = run_cli(
        "groups",
        BERT_LAYERWISE,
        *_bindings(tmp_path, preset),
        "--gin_param",
        "layerwise_decay_pattern_lrs.num_layers = 2",
        "--gin_param",
        "TsvRankingData.max_query_length = 8",
        "--gin_param",
        "TsvRankingData.max_doc_length = 21",
    )
    assert proc.returncode == 0, proc.stderr
    for group in ("head", "layer_1", "layer_0", "embeddings"):
        assert group in proc.stdout

"""``BERT_PRESET`` = a Hugging Face checkpoint folder through the real CLI: the TREC smoke config
fine-tunes a tiny BERT written by transformers at test time, and a folder of an unsupported
model type is refused with exit 2 before anything is recorded (extra `hub`)."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("keras_hub")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")
pytest.importorskip("torch", reason="transformers writes the test checkpoint with PyTorch")
pytest.importorskip("transformers")

from capreolus_opt.data.trec.formats import iter_collection
from tests.cli_helpers import ROOT, run_cli
from tests.hf_checkpoints import make_tiny_hf_bert

SMOKE = "gin_configs/trec_bert_reranker_smoke.gin"
DATA = "gin_configs/data/trec_smoke"


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    monkeypatch.setenv("CAPREOLUS_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _run_folders(runs):
    return [p for p in runs.iterdir() if p.name.isdigit()] if runs.exists() else []


@pytest.mark.slow
def test_trec_bert_smoke_fine_tunes_a_hugging_face_folder(scratch):
    words = sorted({w for _, _, t in iter_collection(str(scratch / DATA / "collection.tsv"))
                    for w in t.lower().split()})[:300]  # fmt: skip
    folder = make_tiny_hf_bert(scratch / "hf", words=words, max_position_embeddings=32)
    proc = run_cli(
        "train", SMOKE, "--gin_param", f'BERT_PRESET = "{folder}"',
        "--observer", "file://runs", "--workdir", "w", cwd=scratch,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = _run_folders(scratch / "runs")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "COMPLETED"
    assert "test/ndcg@10" in record["result"]
    # The saved model carries the checkpoint's encoder with the activation its config.json names.
    from capreolus_opt.models.bert import load_bert_reranker

    model = load_bert_reranker(str(scratch / "w" / "best" / "model.keras"))
    (encoder,) = [layer for layer in model.layers if hasattr(layer, "hidden_act")]
    assert encoder.hidden_act == "gelu" and encoder.vocabulary_size == len(words) + 5

    # rerank, in a fresh process, needs neither the folder nor the gin files.
    shutil.rmtree(folder)
    out = scratch / "reranked.run"
    proc = run_cli(
        "rerank", "w", "--run-file", f"{DATA}/run.txt", "--topics", f"{DATA}/topics.tsv",
        "--collection", f"{DATA}/collection.tsv", "--top-k", "20", "-o", str(out), cwd=scratch,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(out.read_text().splitlines()) > 20


@pytest.mark.slow
def test_unsupported_folder_exits_2_naming_it_before_anything_is_recorded(scratch):
    folder = make_tiny_hf_bert(scratch / "electra")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"model_type": "electra"}))
    proc = run_cli(
        "train", SMOKE, "--gin_param", f'BERT_PRESET = "{folder}"',
        "--observer", "file://runs", "--workdir", "w", cwd=scratch,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert errors == [
        f"capreolus-opt train: error: {folder}: config.json has model_type 'electra'; supported "
        "model types: bert (BERT family, MiniLM included)."
    ]
    assert "Traceback" not in proc.stderr and not _run_folders(scratch / "runs")
    assert not (scratch / "w").exists()

    # A folder without weights: the same, before anything is recorded.
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    proc = run_cli(
        "train", SMOKE, "--gin_param", f'BERT_PRESET = "{folder}"',
        "--observer", "file://runs", cwd=scratch,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"{folder}: no weights; expected model.safetensors" in proc.stderr
    assert not _run_folders(scratch / "runs")

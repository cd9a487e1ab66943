"""A pretrained-style BERT (a tiny preset with its own WordPiece vocabulary) reranking TREC files
through the real CLI: trained with interpolation, saved whole, reloaded by ``rerank``, which
reproduces the recorded test run exactly as training scored it (extra `hub`)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("keras_hub")
pytest.importorskip("tokenizers")

from capreolus_opt.data.trec.formats import iter_collection, read_run
from capreolus_opt.metrics.trec import MEASURES
from tests.bert_presets import make_tiny_preset
from tests.cli_helpers import ROOT, run_cli

SMOKE = "gin_configs/trec_bert_reranker_smoke.gin"
DATA = "gin_configs/data/trec_smoke"


def _collection_words(path) -> list[str]:
    words = sorted({w for _, _, text in iter_collection(str(path)) for w in text.split()})
    return words[:300]  # most, not all: the rest become [UNK], as real vocabularies leave some


@pytest.mark.slow
def test_bert_over_trec_files_trains_saves_whole_and_reranks_identically(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    monkeypatch.setenv("CAPREOLUS_CACHE", str(tmp_path / "cache"))
    words = _collection_words(tmp_path / DATA / "collection.tsv")
    preset = make_tiny_preset(tmp_path / "preset", max_sequence_length=32, words=words)
    bind = ["--gin_param", f'BERT_PRESET = "{preset}"']
    bind += ["--gin_param", "RerankingTask.interpolate = True"]
    proc = run_cli(
        "train", SMOKE, *bind, "--observer", "file://runs", "--workdir", "w", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if p.name.isdigit()]
    record = json.loads((folder / "run.json").read_text())
    info = json.loads((folder / "info.json").read_text())
    assert record["status"] == "COMPLETED"
    assert {f"test/{name}" for name in MEASURES} <= set(record["result"])
    # A preset's weights are pretrained: step 0 is evaluated and recorded beside the best.
    assert {f"start/dev/{name}" for name in MEASURES} <= set(record["result"])
    assert (folder / "step_00000000.dev.run").is_file()
    # Truncation is counted in WordPiece tokens of the preset's vocabulary.
    assert info["task"]["truncation"]["max_doc_length"] == 21
    best = json.loads((tmp_path / "w" / "best" / "best.json").read_text())
    assert 0.0 <= best["interpolation_weight"] <= 1.0
    spec = json.loads((tmp_path / "w" / "best" / "reranker.json").read_text())
    assert spec["builder"] == "keras" and (tmp_path / "w" / "best" / "model.keras").is_file()
    # Saved whole, the model is the best folder's only copy of its weights.
    assert not list((tmp_path / "w").glob("best*/*.npz"))

    # The preset folder is gone: rerank needs only the workdir (vocabulary inside the model).
    shutil.rmtree(preset)
    out = tmp_path / "reranked.run"
    proc = run_cli(
        "rerank", "w", "--run-file", f"{DATA}/run.txt", "--topics", f"{DATA}/topics.tsv",
        "--collection", f"{DATA}/collection.tsv", "--top-k", "20", "-o", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"step-{best['step']} model" in proc.stdout and "interpolated" in proc.stdout
    trained = read_run(str(folder / f"step_{best['step']:08d}.test.run"))
    reranked = read_run(str(out))
    for qid, docs in trained.items():
        np.testing.assert_allclose(
            [reranked[qid][d] for d in docs], list(docs.values()), rtol=1e-5, atol=1e-6
        )


@pytest.mark.slow
def test_trec_bert_config_names_the_missing_preset():
    proc = run_cli("groups", SMOKE)
    assert proc.returncode == 2
    assert "is %gin.REQUIRED and no file or --gin_param gives it a value" in proc.stderr
    assert "preset is %gin.REQUIRED" in proc.stderr and "Traceback" not in proc.stderr

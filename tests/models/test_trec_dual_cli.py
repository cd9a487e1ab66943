"""The BERT dual encoder over TREC files through the real CLI: the smoke config (a tiny preset
with its own WordPiece vocabulary and a sentence-transformers pooling file, lengths chosen from
the collection) trains to COMPLETED, is saved whole, and ``rerank`` reloads it and reproduces
the recorded test run (extra `hub`)."""

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

SMOKE = "gin_configs/trec_dual_reranker_smoke.gin"
DATA = "gin_configs/data/trec_smoke"


@pytest.mark.slow
def test_dual_encoder_trains_saves_whole_and_reranks_identically(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "gin_configs", tmp_path / "gin_configs")
    monkeypatch.setenv("CAPREOLUS_CACHE", str(tmp_path / "cache"))
    texts = [text for _, _, text in iter_collection(str(tmp_path / DATA / "collection.tsv"))]
    words = sorted({w for text in texts for w in text.split()})[:300]
    preset = make_tiny_preset(tmp_path / "preset", max_sequence_length=32, words=words)
    (preset / "1_Pooling").mkdir()
    (preset / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False})
    )
    bind = ["--gin_param", f'BERT_PRESET = "{preset}"']
    proc = run_cli(
        "train", SMOKE, *bind, "--observer", "file://runs", "--workdir", "w", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if p.name.isdigit()]
    record = json.loads((folder / "run.json").read_text())
    info = json.loads((folder / "info.json").read_text())
    assert record["status"] == "COMPLETED"
    assert {f"test/{name}" for name in MEASURES} <= set(record["result"])
    # Lengths from the collection: within 32 positions per side ([CLS] text [SEP]).
    truncation = info["task"]["truncation"]
    assert truncation["max_doc_length"] <= 30 and truncation["max_query_length"] == 8
    groups = {row["group"] for row in info["group_table"]}
    assert groups == {"head", "no_decay", "encoder"}
    spec = json.loads((tmp_path / "w" / "best" / "reranker.json").read_text())
    assert spec["builder"] == "keras" and spec["max_doc_length"] == truncation["max_doc_length"]
    # Saved whole, the model is the best folder's only copy of its weights.
    assert (tmp_path / "w" / "best" / "model.keras").is_file()
    assert not list((tmp_path / "w").glob("best*/*.npz"))
    best = json.loads((tmp_path / "w" / "best" / "best.json").read_text())

    # The preset folder is gone: rerank needs only the workdir (vocabulary inside the model).
    shutil.rmtree(preset)
    out = tmp_path / "reranked.run"
    proc = run_cli(
        "rerank", "w", "--run-file", f"{DATA}/run.txt", "--topics", f"{DATA}/topics.tsv",
        "--collection", f"{DATA}/collection.tsv", "--top-k", "20", "-o", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"step-{best['step']} model" in proc.stdout
    trained = read_run(str(folder / f"step_{best['step']:08d}.test.run"))
    reranked = read_run(str(out))
    for qid, docs in trained.items():
        np.testing.assert_allclose(
            [reranked[qid][d] for d in docs], list(docs.values()), rtol=1e-5, atol=1e-6
        )

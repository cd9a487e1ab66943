"""``rerank`` on hostile arguments: one line naming the thing, exit 2, nothing left behind."""

from __future__ import annotations

import argparse
import json

import pytest

from capreolus_opt.commands import rerank


def _rerank(tmp_path, run: str, output: str, *extra: str) -> int:
    parser = argparse.ArgumentParser(prog="capreolus-opt")
    rerank.register(parser.add_subparsers(dest="command", required=True))
    common = ["--run-file", "r", "--topics", "t", "--collection", "c"]
    args = parser.parse_args(["rerank", run, *common, "-o", output, *extra])
    return args.func(args)


def test_output_a_folder_is_refused_and_leaves_no_temp_file(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    assert _rerank(tmp_path, str(tmp_path), str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert f"-o {tmp_path / 'out'}: is a folder, expected the path of a run file" in err
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and not any((tmp_path / "out").iterdir())


def test_existing_output_needs_force(tmp_path, capsys):
    (tmp_path / "x.run").write_text("keep me")
    assert _rerank(tmp_path, str(tmp_path), str(tmp_path / "x.run")) == 2
    assert "already exists (pass --force to replace it)" in capsys.readouterr().err
    assert (tmp_path / "x.run").read_text() == "keep me"
    # with --force the check passes and the next problem (no best/) is reported instead
    assert _rerank(tmp_path, str(tmp_path), str(tmp_path / "x.run"), "--force") == 2
    assert "has no best/ folder" in capsys.readouterr().err


def test_a_workdir_without_best_names_best_not_run_json(tmp_path, capsys):
    (tmp_path / "w").mkdir()
    assert _rerank(tmp_path, str(tmp_path / "w"), str(tmp_path / "x.run")) == 2
    err = capsys.readouterr().err.strip()
    assert f"{tmp_path / 'w'} has no best/ folder" in err and "run.json" not in err
    assert "\n" not in err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("reranker.json", "{not json", "reranker.json is unreadable (expected a JSON object)"),
        ("reranker.json", "[1, 2]", "reranker.json holds list, expected a JSON object"),
        ("reranker.json", '{"max_query_length": 8}', "reranker.json lacks max_doc_length"),
        ("best.json", "\x00\x01garbage", "best.json is unreadable (expected a JSON object)"),
    ],
)
def test_corrupt_best_files_are_named(tmp_path, name, content, message):
    from capreolus_opt.models.saved_reranker import load_reranker

    best = tmp_path / "best"
    best.mkdir()
    spec = {"builder": "build_reranker", "model": {}, "max_query_length": 8, "max_doc_length": 8}
    (best / "reranker.json").write_text(json.dumps(spec))
    (best / "best.json").write_text(json.dumps({"step": 4}))
    (best / name).write_text(content)
    with pytest.raises(ValueError, match="^" + str(best / message.split(" ", 1)[0])) as info:
        load_reranker(str(tmp_path))
    assert message.split(" ", 1)[1] in str(info.value)


def test_corrupt_weights_file_is_named(tmp_path):
    from capreolus_opt.models.saved_reranker import load_reranker

    best = tmp_path / "best"
    best.mkdir()
    model = {"vocab_size": 10, "query_length": 4, "document_length": 4, "hidden_dim": 8,
             "num_layers": 1, "num_heads": 1, "intermediate_dim": 8}  # fmt: skip
    spec = {"builder": "build_reranker", "model": model, "max_query_length": 4,
            "max_doc_length": 4}  # fmt: skip
    (best / "reranker.json").write_text(json.dumps(spec))
    (best / "best.json").write_text(json.dumps({"step": 4}))
    (best / "vocab.txt").write_text("[PAD]\n[UNK]\na\n")
    (best / "model.weights.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="model.weights.npz is unreadable"):
        load_reranker(str(tmp_path))


def test_a_model_file_outside_best_is_refused(tmp_path):
    from capreolus_opt.models.saved_reranker import load_reranker

    best = tmp_path / "best"
    best.mkdir()
    spec = {"builder": "keras", "model_file": "../../evil.keras", "max_query_length": 4,
            "max_doc_length": 4}  # fmt: skip
    (best / "reranker.json").write_text(json.dumps(spec))
    (best / "best.json").write_text(json.dumps({"step": 4}))
    with pytest.raises(ValueError, match="model_file '../../evil.keras' is not a plain file name"):
        load_reranker(str(tmp_path))


def test_a_workdir_written_with_two_copies_of_the_weights_still_loads(tmp_path):
    """Older workdirs kept model.weights.npz beside a model saved whole; model.keras is read."""
    import keras
    import numpy as np

    from capreolus_opt.models.saved_reranker import load_reranker
    from capreolus_opt.training.weights import save_weights

    query, document = keras.Input((4,), name="query"), keras.Input((4,), name="document")
    joined = keras.layers.Concatenate()([query, document])
    score = keras.layers.Reshape(())(keras.layers.Dense(1, name="head")(joined))
    model = keras.Model({"query": query, "document": document}, score)
    best = tmp_path / "best"
    best.mkdir()
    model.save(str(best / "model.keras"))
    save_weights(model, str(best / "model.weights.npz"))
    spec = {"builder": "keras", "model_file": "model.keras", "max_query_length": 4,
            "max_doc_length": 4}  # fmt: skip
    (best / "reranker.json").write_text(json.dumps(spec))
    (best / "best.json").write_text(json.dumps({"step": 4}))
    (best / "vocab.txt").write_text("[PAD]\n[UNK]\na\n")
    loaded = load_reranker(str(tmp_path))
    for got, want in zip(loaded.model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert loaded.best == {"step": 4} and loaded.max_doc_length == 4

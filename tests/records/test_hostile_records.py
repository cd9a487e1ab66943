"""Hostile records: values read from a store never name a path outside the folder the user gave.

A record's ``run_uuid`` becomes a folder name (``export tensorboard``), its artifact names file
names: a crafted record (``../../elsewhere``, an absolute path) is skipped by every reader with a
line naming the record and the value, and the runs beside it are exported as usual.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
from pathlib import Path

import pytest

from capreolus_opt.records.load import load_runs
from capreolus_opt.storage.paths import UnsafePathError, check_run_uuid, safe_join
from tests.recorded_runs import Spec, record_run

HOSTILE = ["../../elsewhere", "/tmp/capreolus_hostile_abs", "..", "a/b", ""]


def _export(argv: list[str]) -> int:
    from capreolus_opt.commands import export

    parser = argparse.ArgumentParser(prog="capreolus-opt")
    export.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _everything_under(root) -> set[str]:
    return {os.path.join(d, f) for d, _, files in os.walk(root) for f in files}


@pytest.mark.parametrize("bad", HOSTILE)
def test_check_run_uuid_refuses_path_like_values(bad):
    with pytest.raises(ValueError, match="is not a run UUID"):
        check_run_uuid(bad)


@pytest.mark.parametrize("part", ["../x", "/etc/passwd", "a/../../b", ""])
def test_safe_join_refuses_paths_leaving_the_root(tmp_path, part):
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, part)
    assert safe_join(tmp_path, "a", "b") == os.path.join(tmp_path, "a", "b")


def test_safe_join_refuses_a_symbolic_link_out_of_the_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(UnsafePathError, match="leads outside"):
        safe_join(tmp_path / "root", "link", "x")


@pytest.mark.parametrize("store", ["file", "sqlite"])
@pytest.mark.parametrize("bad", ["../../elsewhere", "/tmp/capreolus_hostile_abs"])
def test_export_tensorboard_writes_nothing_outside_logdir(observers, tmp_path, store, bad, capsys):
    pytest.importorskip("tensorboard")
    make = observers["make_file" if store == "file" else "make_sql"]
    good = Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]])
    record_run(Spec(hparams=[["AdamMultilr.learning_rate", 3e-3]], run_uuid=bad), [make()])
    record_run(good, [make()])
    logdir = tmp_path / "deep" / "er" / "logs"
    before = _everything_under(tmp_path)
    assert _export(["export", "tensorboard", observers[store], "--logdir", str(logdir)]) == 0
    err = capsys.readouterr().err
    assert f"info.run_uuid {bad!r} is not a run UUID" in err and "skipped:" in err
    written = _everything_under(tmp_path) - before
    assert written and all(path.startswith(str(logdir) + os.sep) for path in written)
    assert [p.name for p in logdir.iterdir() if p.is_dir()] == [good.run_uuid]
    assert not os.path.exists("/tmp/capreolus_hostile_abs")


def test_resumed_from_and_group_names_are_checked_when_loaded(observers):
    spec = Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]])
    record_run(spec, [observers["make_file"]()])
    info_path = Path(observers["file"], "1", "info.json")
    info = json.loads(info_path.read_text())
    for key, value, message in [
        ("resumed_from", "../x", "info.resumed_from '../x' is not a run UUID"),
        ("group_table", [{"group": "../../g"}], "info.group_table group '../../g' is not a group"),
    ]:
        info_path.write_text(json.dumps({**info, key: value}))
        runs = load_runs(observers["file"])
        assert not runs and message in str(runs.problems[0])


def test_an_artifact_name_leaving_the_run_folder_skips_the_record(observers):
    record_run(Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]]), [observers["make_file"]()])
    run_json = Path(observers["file"], "1", "run.json")
    record = json.loads(run_json.read_text())
    record["artifacts"] = ["../../../etc/passwd"]
    run_json.write_text(json.dumps(record))
    runs = load_runs(observers["file"])
    assert not runs
    assert "run.json lists artifact '../../../etc/passwd' is not a plain file name" in str(
        runs.problems[0]
    )


@pytest.mark.parametrize("kind", ["file", "under_a_file"])
def test_export_into_an_unusable_logdir_is_one_line_exit_2(observers, tmp_path, kind, capsys):
    pytest.importorskip("tensorboard")
    record_run(Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]]), [observers["make_file"]()])
    (tmp_path / "taken").write_text("not a folder")
    logdir = tmp_path / "taken" if kind == "file" else tmp_path / "taken" / "logs"
    assert _export(["export", "tensorboard", observers["file"], "--logdir", str(logdir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --logdir {logdir}: ") and "\n" not in err
    assert ("is a file, expected a folder" if kind == "file" else "cannot create") in err
    assert (tmp_path / "taken").read_text() == "not a folder"


def _silent_listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts connections into its backlog, never answers
    return server


@pytest.mark.parametrize("server", ["refused", "silent"])
def test_export_mlflow_to_an_unreachable_server_is_bounded_one_line(
    observers, server, monkeypatch, capsys
):
    pytest.importorskip("mlflow")
    from capreolus_opt.export import mlflow as exporter

    monkeypatch.setattr(exporter, "TIMEOUT_S", 1.0)
    record_run(Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]]), [observers["make_file"]()])
    listener = _silent_listener()
    port = listener.getsockname()[1]
    if server == "refused":
        listener.close()
    try:
        uri = f"http://user:secret@127.0.0.1:{port}"
        assert _export(["export", "mlflow", observers["file"], "--tracking-uri", uri]) == 2
    finally:
        listener.close()
    err = capsys.readouterr().err.strip()
    assert f"--tracking-uri http://user:***@127.0.0.1:{port}: no MLflow server answered" in err
    assert "secret" not in err and len(err.splitlines()) == 1
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_compare_diff_plot_skip_a_hostile_record_and_name_it(observers, tmp_path, capsys):
    from tests.recorded_runs import run_cli

    good = [Spec(hparams=[["AdamMultilr.learning_rate", lr]]) for lr in (1e-3, 3e-4)]
    for spec in good:
        record_run(spec, [observers["make_sql"]()])
    record_run(Spec(hparams=[["AdamMultilr.learning_rate", 1e-4]], run_uuid="../../x"),
               [observers["make_sql"]()])  # fmt: skip
    source = observers["sqlite"]
    assert run_cli(["compare", source, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert sorted(row["run"] for row in json.loads(out)) == sorted(s.run_uuid for s in good)
    assert "run.id=3: info.run_uuid '../../x' is not a run UUID" in err
    a, b = (s.run_uuid[:8] for s in good)
    assert run_cli(["diff", "--source", source, a, b]) == 0
    assert "'../../x' is not a run UUID" in capsys.readouterr().err
    target = tmp_path / "p.png"
    assert run_cli(["plot", source, "--metric", "train/loss", "-o", str(target)]) == 0
    assert target.is_file() and "'../../x'" in capsys.readouterr().err


def test_a_hostile_mongo_record_is_skipped_naming_it(observers):
    record_run(Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]], run_uuid="/etc/x"),
               [observers["make_mongo"]()])  # fmt: skip
    good = Spec(hparams=[["AdamMultilr.learning_rate", 3e-4]])
    record_run(good, [observers["make_mongo"]()])
    runs = load_runs(observers["mongo"], mongo_client_factory=observers["mongo_factory"])
    assert [run.run_uuid for run in runs] == [good.run_uuid]
    assert "info.run_uuid '/etc/x' is not a run UUID" in str(runs.problems[0])


def test_a_hostile_run_folder_given_to_resume_or_rerank_is_refused_naming_the_value(observers):
    from capreolus_opt.records.load import find_recorded_run

    record_run(Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]], run_uuid="../../x"),
               [observers["make_file"]()])  # fmt: skip
    folder = os.path.join(observers["file"], "1")
    with pytest.raises(ValueError, match=r"is not a readable run folder: info.run_uuid "
                       r"'\.\./\.\./x' is not a run UUID"):  # fmt: skip
        find_recorded_run(folder, [])


@pytest.mark.slow
def test_sweep_table_skips_a_hostile_record_in_its_observer(tmp_path, monkeypatch, capsys):
    from sacred.observers import FileStorageObserver

    from tests.cli_helpers import SMOKE
    from tests.recorded_runs import run_cli

    monkeypatch.chdir(tmp_path)
    record_run(Spec(hparams=[["AdamMultilr.learning_rate", 1e-3]], run_uuid="../../x"),
               [FileStorageObserver(str(tmp_path / "runs"))])  # fmt: skip
    code = run_cli(["sweep", SMOKE, "--grid", "train.num_steps=[4]", "--observer",
                    f"file://{tmp_path / 'runs'}"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "1 of 1 points succeeded" in out
    assert "info.run_uuid '../../x' is not a run UUID" in err
    assert not (tmp_path.parent / "x").exists()

"""Sacred's private names sit in one module: they exist on the installed Sacred's run, the
version check says what it should, and no other module of the package touches them."""

from __future__ import annotations

import ast
import inspect
import pathlib

import pytest
from sacred import Experiment
from sacred.observers import FileStorageObserver, SqlObserver
from sacred.run import Run

from capreolus_opt import framework_versions
from capreolus_opt.tracking import sacred_private
from capreolus_opt.tracking.sink import SacredMetricsSink

PACKAGE = pathlib.Path(sacred_private.__file__).resolve().parents[1]
PRIVATE = set(sacred_private.RUN_METHODS) | set(sacred_private.RUN_ATTRIBUTES)


def test_a_started_run_has_every_private_name_and_the_sink_works_through_them(tmp_path):
    ex = Experiment("private", save_git_info=False)
    ex.observers.append(FileStorageObserver(str(tmp_path / "runs")))
    seen = {}

    @ex.main
    def main(_run):
        seen["names"] = [name for name in sorted(PRIVATE) if not hasattr(_run, name)]
        seen["id"] = sacred_private.run_id(_run)
        sink = SacredMetricsSink(_run, flush_every_s=60)
        sink.log_metrics(1, {"loss": 0.5})
        sink.record_info(stopped_reason="test")
        sink.flush()
        seen["queued_after_flush"] = sacred_private.queued_metrics(_run)
        seen["dropped"] = list(sacred_private.failed_observers(_run))

    run = ex.run(options={"--capture": "sys"})
    assert run.status == "COMPLETED"
    assert seen["names"] == []
    assert str(seen["id"]) == "1" and sacred_private.run_id(run) == seen["id"]
    assert not seen["queued_after_flush"] and seen["dropped"] == []  # flush took the points
    assert run.info["stopped_reason"] == "test"
    assert (tmp_path / "runs" / "1" / "metrics.json").read_text().count("0.5") == 1
    assert sacred_private.run_id(None) is None


def test_sacred_calls_the_sql_observer_hook_we_override():
    for name in sacred_private.SQL_OBSERVER_HOOKS:
        for event in (SqlObserver.started_event, SqlObserver.queued_event):
            assert f"self.{name}(" in inspect.getsource(event)


def test_the_pinned_version_passes_and_another_warns_in_one_line(monkeypatch):
    assert sacred_private.check_version() is None
    monkeypatch.setattr(framework_versions.metadata, "version", lambda name: "0.9.0")
    message = sacred_private.check_version()
    assert message is not None and "\n" not in message and "sacred 0.9.0" in message
    with pytest.warns(
        framework_versions.UntestedVersionWarning,
        match=r"sacred 0.9.0 is installed; .* tested with 0.8.7",
    ):
        sacred_private._warn_if_untested()


def test_a_missing_private_method_is_an_import_error_naming_it(monkeypatch):
    monkeypatch.delattr(Run, "_safe_call")
    expected = r"sacred 0.8.7 lacks Run._safe_call, .* install 'sacred==0.8.7'"
    with pytest.raises(ImportError, match=expected):
        sacred_private.check_version()


def _private_run_uses(tree: ast.AST) -> list[str]:
    """``x._name`` (not ``self``) and ``getattr(x, "_name")`` for the run's private names."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                found.append(ast.unparse(node))
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in PRIVATE
        ):
            found.append(ast.unparse(node))
    return found


def test_no_module_but_sacred_private_touches_a_runs_private_names():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.resolve() == pathlib.Path(sacred_private.__file__).resolve():
            continue
        uses = _private_run_uses(ast.parse(path.read_text(encoding="utf-8")))
        if uses:
            found[path.relative_to(PACKAGE).as_posix()] = uses
    assert not found
    sample = ast.parse("run._failed_observers\ngetattr(run, '_id', None)\nself._metrics\n")
    assert _private_run_uses(sample) == ["run._failed_observers", "getattr(run, '_id', None)"]


def test_a_handler_made_during_a_run_writes_to_the_real_stream_after_it(in_tmp, capsys):
    """``--capture sys`` swaps sys.stderr for a proxy whose buffer Sacred closes when the run
    ends; a logging handler created during the run (``logging.basicConfig`` from a library's
    ``logging.info``) must not be left writing into it."""
    import logging
    import types

    from sacred.stdout_capturing import TeeingStreamProxy

    from capreolus_opt.tracking.run import RunRequest, run_tracked
    from tests.tracking import fake_backend
    from tests.tracking.tracking_helpers import write_gin

    made = []

    def run_training(**kwargs):
        made.append(logging.StreamHandler())  # its stream is sys.stderr now: Sacred's proxy
        logging.getLogger("capreolus_test.during_run").addHandler(made[-1])
        assert isinstance(made[-1].stream, TeeingStreamProxy)
        return fake_backend.run_training(**kwargs)

    backend = types.SimpleNamespace(**{**vars(fake_backend), "run_training": run_training})
    request = RunRequest(gin_files=[write_gin(in_tmp / "a.gin", steps=2)], capture="sys")
    logger = logging.getLogger("capreolus_test.during_run")
    try:
        outcome = run_tracked(request, backend=backend, report=lambda line: None)
        assert outcome.status == "COMPLETED"
        assert not isinstance(made[0].stream, TeeingStreamProxy)
        capsys.readouterr()
        logger.warning("after the run")
        err = capsys.readouterr().err
        assert "after the run" in err and "Logging error" not in err
    finally:
        for handler in made:
            logger.removeHandler(handler)

"""Sacred runs on the pkg_resources stand-in: the versions it records are importlib.metadata's,
the real module (where installed) is neither replaced nor imported, and sacred imports and records
a run when ``import pkg_resources`` fails (setuptools >= 82, or none installed)."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import yaml
from sacred import Experiment
from sacred.observers import FileStorageObserver

from capreolus_opt.tracking import sacred_compat
from tests.cli_helpers import ROOT


def _recorded_dependencies(tmp_path) -> dict[str, str]:
    ex = Experiment("compat", save_git_info=False)
    ex.observers.append(FileStorageObserver(str(tmp_path / "runs")))

    @ex.main
    def main():
        return float(np.float64(1.0)) + len(yaml.safe_dump({}))

    run = ex.run(options={"--capture": "sys"})
    assert run.status == "COMPLETED"
    record = json.loads((tmp_path / "runs" / str(run._id) / "run.json").read_text())
    pairs = (dep.split("==") for dep in record["experiment"]["dependencies"])
    return dict(pairs)


def test_sacred_modules_see_the_stand_in_and_nothing_else_does():
    import sacred.dependencies
    import sacred.observers.mongo

    assert sacred.dependencies.pkg_resources is sacred_compat.SHIM
    assert sacred.observers.mongo.pkg_resources is sacred_compat.SHIM
    assert sys.modules.get("pkg_resources") is not sacred_compat.SHIM


def test_a_recorded_run_has_the_versions_importlib_metadata_reports(tmp_path):
    recorded = _recorded_dependencies(tmp_path)
    # Module names that are not their distribution's (yaml -> PyYAML) go through top_level.txt.
    assert recorded["numpy"] == importlib.metadata.version("numpy")
    assert recorded["pyyaml"] == importlib.metadata.version("PyYAML")
    assert recorded["sacred"] == importlib.metadata.version("sacred")
    for name, version in recorded.items():
        if version != "<unknown>":
            assert version == importlib.metadata.version(name), name


def test_the_working_set_is_importlib_metadata_first_on_sys_path_first():
    by_key = sacred_compat.SHIM.working_set.by_key
    assert by_key["numpy"].version == importlib.metadata.version("numpy")
    assert by_key["gin-config"].project_name == "gin-config"
    assert list(by_key["pyyaml"]._get_metadata("top_level.txt")) == ["_yaml", "yaml"]
    assert list(by_key["numpy"]._get_metadata("no-such-file.txt")) == []
    assert {dist.key for dist in sacred_compat.SHIM.working_set} == set(by_key)
    for dist in importlib.metadata.distributions():
        name = sacred_compat.project_name(dist)
        if name is None:
            continue
        found = by_key[sacred_compat.safe_name(name).lower()]
        if found._dist._path == dist._path:
            assert found.version == dist.version


def test_sacred_reads_its_mime_types_through_the_stand_in():
    import sacred.observers.mongo

    path = sacred_compat.SHIM.resource_filename("sacred", "data/mime.types")
    assert path.endswith("sacred/data/mime.types")
    with open(path) as f:
        assert "application/json" in f.read()
    assert sacred.observers.mongo.mimetype_detector.guess_type("a.json")[0] == "application/json"


def _real_pkg_resources():
    """setuptools' pkg_resources, else the copy pip vendors (setuptools >= 82 has none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools >= 67 deprecates its import
        for name in ("pkg_resources", "pip._vendor.pkg_resources"):
            try:
                return importlib.import_module(name)
            except ImportError:
                continue
    return None


@pytest.mark.skipif(
    _real_pkg_resources() is None, reason="neither setuptools nor pip provides pkg_resources here"
)
def test_the_stand_in_agrees_with_the_real_pkg_resources():
    real = _real_pkg_resources()
    shim = sacred_compat.SHIM

    def table(working_set):
        return {
            d.key: (d.project_name, d.version, list(d._get_metadata("top_level.txt")))
            for d in working_set
        }

    shim_table, real_table = table(shim.working_set), table(real.working_set)
    # Importing pkg_resources puts setuptools' vendored packages on sys.path: only those differ.
    vendored = set(real_table) - set(shim_table)
    assert all("_vendor" in real.working_set.by_key[key].location for key in vendored)
    assert shim_table == {key: row for key, row in real_table.items() if key not in vendored}
    assert shim.resource_filename("sacred", "data/mime.types") == real.resource_filename(
        "sacred", "data/mime.types"
    )


BLOCKED = """
import importlib.abc, json, sys, warnings

class NoPkgResources(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname == "pkg_resources" or fullname.startswith("pkg_resources."):
            raise ModuleNotFoundError("No module named 'pkg_resources'", name=fullname)

sys.meta_path.insert(0, NoPkgResources())
sys.modules.pop("pkg_resources", None)
warnings.filterwarnings("error", message=".*pkg_resources")

import capreolus_opt.tracking
from sacred import Experiment
from sacred.observers import FileStorageObserver, MongoObserver

ex = Experiment("blocked", save_git_info=False)
ex.observers.append(FileStorageObserver(sys.argv[1]))
ex.main(lambda: 1)
run = ex.run(options={"--capture": "sys"})
print(json.dumps({"status": run.status, "id": run._id}))
try:
    import pkg_resources
except ModuleNotFoundError:
    print("pkg_resources still absent")
"""


@pytest.mark.slow
def test_sacred_imports_and_records_a_run_when_pkg_resources_cannot_be_imported(tmp_path):
    script = tmp_path / "blocked.py"  # a file, since sacred refuses experiments from `-c`
    script.write_text(textwrap.dedent(BLOCKED))
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    result = json.loads(lines[0])
    assert result["status"] == "COMPLETED"
    assert lines[1] == "pkg_resources still absent"
    assert "pkg_resources" not in proc.stderr
    record = json.loads((tmp_path / "runs" / str(result["id"]) / "run.json").read_text())
    recorded = dict(dep.split("==") for dep in record["experiment"]["dependencies"])
    assert recorded["sacred"] == importlib.metadata.version("sacred")

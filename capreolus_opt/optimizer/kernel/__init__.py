"""The one-pass Adam kernel: a TensorFlow custom op built on first use, cached per user.

`adam_onepass.cc` (shipped beside this file) is compiled with the C++ compiler (``$CXX``, else
``g++``) against the installed TensorFlow's headers the first time a CPU variable takes a fused
step, into ``$CAPREOLUS_OPT_KERNEL_CACHE`` (default ``~/.cache/capreolus_opt/kernels``, or under
``$XDG_CACHE_HOME``). The library's file name is a hash of the source, TensorFlow's version and
compile/link flags, the compiler and our flags, so a changed source or TensorFlow gets a new
build and an unchanged one is loaded without recompiling. Each build writes a temporary file and
renames it into place (atomic on POSIX), so concurrent first builds (pytest workers, sweep points)
are safe: the last rename wins and every one of them is a complete library.

``CAPREOLUS_OPT_ADAM_KERNEL`` chooses, read each time a step is traced:
``auto`` (default: build/load, on failure warn once and use TF's ResourceApplyAdam),
``onepass`` (build/load or raise), ``tf`` (never build; TF's kernels).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import warnings
from pathlib import Path
from types import ModuleType

import tensorflow as tf

SOURCE = Path(__file__).with_name("adam_onepass.cc")
ENV_MODE = "CAPREOLUS_OPT_ADAM_KERNEL"
ENV_CACHE = "CAPREOLUS_OPT_KERNEL_CACHE"
MODES = ("auto", "onepass", "tf")
# -ffp-contract=off: no fused multiply-adds, so the results equal TF's ResourceApplyAdam bit for
# bit on every ISA clone; -fno-math-errno lets sqrt vectorise; -w: TF's headers warn by the
# hundred (deprecated tsl mutexes).
CXXFLAGS = ("-shared", "-fPIC", "-O3", "-ffp-contract=off", "-fno-math-errno", "-w")
BUILD_TIMEOUT_S = 600


class KernelBuildError(RuntimeError):
    """The one-pass kernel could not be compiled or loaded."""


class KernelFallbackWarning(UserWarning):
    """`auto` mode fell back to TF's ResourceApplyAdam kernels."""


def mode() -> str:
    """The requested kernel, ``$CAPREOLUS_OPT_ADAM_KERNEL``: ``auto``, ``onepass`` or ``tf``."""
    value = os.environ.get(ENV_MODE, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{ENV_MODE}={value!r}: expected one of {', '.join(MODES)}")
    return value


def cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "capreolus_opt" / "kernels"


def compiler() -> str:
    return os.environ.get("CXX") or "g++"


def build_command(output: Path) -> list[str]:
    return [
        compiler(),
        *CXXFLAGS,
        *tf.sysconfig.get_compile_flags(),
        str(SOURCE),
        "-o",
        str(output),
        *tf.sysconfig.get_link_flags(),
    ]


def library_path(directory: Path | None = None) -> Path:
    """Where the library for this source, TensorFlow and flags is (or will be) cached.

    The compiler's name is not part of the key: a library built once stays usable after the
    compiler is gone (or ``$CXX`` changes)."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    for part in (tf.__version__, *build_command(Path("out.so"))[1:]):
        digest.update(b"\0" + part.encode())
    return (directory or cache_dir()) / f"adam_onepass_{digest.hexdigest()[:20]}.so"


def build(directory: Path | None = None) -> tuple[Path, bool]:
    """Compile into the cache unless already there; returns (library path, compiled now)."""
    path = library_path(directory)
    if path.is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    command = build_command(tmp)
    try:
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise KernelBuildError(f"{command[0]}: {error}") from error
        if done.returncode:
            lines = [line for line in done.stderr.splitlines() if "error" in line]
            first = lines[0] if lines else (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise KernelBuildError(
                f"{command[0]} exited with {done.returncode}: {first.strip()}\n"
                f"command: {' '.join(command)}\n{done.stderr[-4000:]}"
            )
        os.replace(tmp, path)  # atomic: readers see no library or a complete one
    finally:
        tmp.unlink(missing_ok=True)
    return path, True


_loaded: dict[str, ModuleType | KernelBuildError] = {}
_warned: set[str] = set()


def _load() -> ModuleType:
    if "ops" not in _loaded:
        try:
            path, _ = build()
            _loaded["ops"] = tf.load_op_library(str(path))
        except (KernelBuildError, OSError, tf.errors.OpError) as error:
            if not isinstance(error, KernelBuildError):
                error = KernelBuildError(f"{type(error).__name__}: {error}")
            _loaded["ops"] = error
    result = _loaded["ops"]
    if isinstance(result, KernelBuildError):
        raise KernelBuildError(str(result))  # a fresh one: no tracebacks piling up
    return result


def onepass_ops() -> ModuleType | None:
    """The loaded op module, or None to use TF's kernels (mode ``tf``, or ``auto`` on failure).

    In ``auto`` mode a failure warns once per process with a one-line reason; ``onepass`` mode
    raises `KernelBuildError` instead. Called while a step is traced (the choice never enters the
    graph): the first call may compile (once per cache), later ones return the cached module."""
    requested = mode()
    if requested == "tf":
        return None
    try:
        return _load()
    except KernelBuildError as error:
        if requested == "onepass":
            raise
        if not _warned:
            _warned.add("fallback")
            reason = str(error).splitlines()[0]
            warnings.warn(
                f"capreolus_opt: the one-pass Adam kernel is unavailable ({reason}); using "
                f"TF's ResourceApplyAdam instead ({ENV_MODE}=tf skips the build)",
                KernelFallbackWarning,
                stacklevel=2,
            )
        return None


def reset() -> None:
    """Forget the load result and the warning (tests); a loaded library stays loaded."""
    _loaded.clear()
    _warned.clear()

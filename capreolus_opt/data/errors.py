"""``DataError``: bad input data, named by file and line, and UTF-8 line reading that names both.

Every loader in ``data/`` raises ``DataError`` for a problem in a file, with a message that starts
with ``FILE:LINE:`` (or ``FILE:`` for a whole-file problem such as "no examples"), so the
``train`` command can print that one line and exit 2 before a run is recorded.
"""

from __future__ import annotations

from collections.abc import Iterator


class DataError(ValueError):
    """A problem in an input file; ``path`` and ``line`` (1-based, or None) locate it."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


# Magic numbers of the compressed formats collections are usually shipped in. Reading them
# transparently would have to reach every reader (line counts, caches keyed by file content,
# ir_datasets conversions), so they are refused by name instead of failing as "bad UTF-8".
_COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gunzip"),
    (b"BZh", "bzip2", "bunzip2"),
    (b"\xfd7zXZ\x00", "xz", "unxz"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
)


def refuse_compressed(path: str, head: bytes) -> None:
    """Raise ``DataError`` when ``head`` (the first bytes of ``path``) is a compressed file."""
    for magic, kind, tool in _COMPRESSED:
        if head.startswith(magic):
            raise DataError(
                path, None, f"{kind}-compressed, expected plain text (decompress it first, "
                f"e.g. {tool} {path})"
            )  # fmt: skip


def read_lines(path: str) -> Iterator[tuple[int, str]]:
    """``(line number, text without the line ending)`` for every non-blank line of ``path``.

    Lines are decoded one by one, so invalid UTF-8 raises ``DataError`` naming the line and the
    byte offset within it (Python's own error names neither the file nor the line); a gzip,
    bzip2, xz or zstd file is refused as compressed.
    """
    try:
        f = open(path, "rb")
    except OSError as err:
        raise DataError(path, None, f"cannot be read ({err.strerror or err})") from None
    with f:
        refuse_compressed(path, f.peek(8)[:8])
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    path,
                    lineno,
                    f"not valid UTF-8 (byte {raw[err.start]:#04x} at column "
                    f"{err.start + 1}); re-encode the file as UTF-8",
                ) from None
            line = line.rstrip("\r\n")
            if line.strip():
                yield lineno, line.lstrip("\ufeff") if lineno == 1 else line

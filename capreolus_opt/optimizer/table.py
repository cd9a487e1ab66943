"""GroupTable: which variable went to which learning-rate group, printable and serialisable."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterator, Sequence
from typing import Any

_FIELDS = ("variable", "shape", "params", "group", "pattern", "lr")
# Columns shown only when some row has a value (a table without multipliers looks as before).
_OPTIONAL = ("lr_mult", "wd_mult", "unfreeze_at")


@dataclasses.dataclass(frozen=True)
class GroupRow:
    """One variable: its path, shape, parameter count, group, the pattern that matched, its lr."""

    variable: str
    shape: tuple[int, ...]
    params: int
    group: str
    pattern: str | None
    lr: float
    lr_mult: float | None = None  # set for groups given as a factor on the base learning_rate
    wd_mult: float | None = None  # set for groups given as a factor on the base weight_decay
    unfreeze_at: int | str | None = None  # scheduled groups: first training step, or "manual"

    def to_record(self) -> dict[str, Any]:
        """A plain JSON-serialisable dict (shape as a list; optional fields only when set)."""
        record = dataclasses.asdict(self)
        record["shape"] = list(self.shape)
        for key in _OPTIONAL:
            if record[key] is None:
                del record[key]
        return record


class GroupTable:
    """The variable-to-group assignment of a built `AdamMultilr`, in build order.

    `group_names` keeps every group in priority order (``"default"`` last), including groups that
    received no variable, so that `totals()` and `to_text()` show them with zero counts.
    """

    def __init__(self, rows: Sequence[GroupRow], group_names: Sequence[str]) -> None:
        self.rows: list[GroupRow] = list(rows)
        self.group_names: list[str] = list(group_names)

    def __iter__(self) -> Iterator[GroupRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"GroupTable({len(self.rows)} variables, groups={self.group_names})"

    def __str__(self) -> str:
        return self.to_text()

    def totals(self) -> dict[str, tuple[int, int]]:
        """`{group: (n_tensors, n_params)}` for every group, in priority order."""
        totals = {name: [0, 0] for name in self.group_names}
        for row in self.rows:
            entry = totals.setdefault(row.group, [0, 0])
            entry[0] += 1
            entry[1] += row.params
        return {name: (n, p) for name, (n, p) in totals.items()}

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per variable (JSON-serialisable), e.g. for a run record."""
        return [row.to_record() for row in self.rows]

    def _optional_columns(self) -> list[str]:
        return [key for key in _OPTIONAL if any(getattr(r, key) is not None for r in self.rows)]

    def to_csv(self) -> str:
        """CSV text with a header row; shapes are written as ``4x8``; empty cell = not set."""
        optional = self._optional_columns()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([*_FIELDS, *optional])
        for row in self.rows:
            shape = "x".join(str(d) for d in row.shape)
            pattern = "" if row.pattern is None else row.pattern
            extra = ["" if getattr(row, k) is None else repr(getattr(row, k)) for k in optional]
            writer.writerow(
                [row.variable, shape, row.params, row.group, pattern, repr(row.lr), *extra]
            )
        return buffer.getvalue()

    def to_text(self) -> str:
        """Aligned columns, one line per variable, then one total line per group."""
        optional = self._optional_columns()
        header = ["variable", "shape", "params", "group", "pattern", "lr", *optional]
        lines = [
            [
                row.variable,
                "x".join(str(d) for d in row.shape) or "scalar",
                f"{row.params:,}",
                row.group,
                "-" if row.pattern is None else row.pattern,
                f"{row.lr:.6g}",
                *(_cell(getattr(row, k)) for k in optional),
            ]
            for row in self.rows
        ]
        widths = [max(len(c) for c in column) for column in zip(header, *lines, strict=False)]
        numeric = {2, *range(5, len(header))}

        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(
                c.rjust(w) if i in numeric else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()

        out = [fmt(header), fmt(["-" * w for w in widths])]
        out += [fmt(cells) for cells in lines]
        out.append("")
        totals = self.totals()
        name_width = max([len(n) for n in totals] + [5])
        for name, (n_tensors, n_params) in totals.items():
            out.append(
                f"group {name:<{name_width}}  {n_tensors:>5} tensors  {n_params:>14,} params"
            )
        n_all = sum(p for _, p in totals.values())
        out.append(f"{'total':<{name_width + 6}}  {len(self.rows):>5} tensors  {n_all:>14,} params")
        return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)

"""The benchmark's result table: one row per metric, isthmus beside HAProxy, the ratio, and the
target with PASS/MISS where the issue sets one."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    """One metric. ``ratio`` is isthmus / HAProxy; ``verdict`` is PASS, MISS or empty."""

    metric: str
    isthmus: float | None
    haproxy: float | None
    unit: str = ""
    target: str = ""
    verdict: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.isthmus is None or not self.haproxy:
            return None
        return self.isthmus / self.haproxy


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


@dataclass
class Report:
    """Rows in the order they were measured, plus free-text notes printed under the table."""

    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(
            f"  {row.metric}: isthmus {_fmt(row.isthmus)} {row.unit}, haproxy "
            f"{_fmt(row.haproxy)} {row.unit} {row.verdict}".rstrip(),
            flush=True,
        )

    def table(self) -> str:
        header = ("metric", "isthmus", "haproxy", "ratio", "target", "")
        lines = [header]
        for row in self.rows:
            unit = f" {row.unit}" if row.unit else ""
            ratio = row.ratio
            lines.append(
                (
                    row.metric,
                    _fmt(row.isthmus) + unit,
                    _fmt(row.haproxy) + (unit if row.haproxy is not None else ""),
                    f"{ratio:.2f}x" if ratio is not None else "-",
                    row.target,
                    row.verdict,
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = []
        for index, line in enumerate(lines):
            out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
            if index == 0:
                out.append("  ".join("-" * w for w in widths))
        out.extend(f"note: {note}" for note in self.notes)
        out.extend(f"note: {row.metric}: {row.note}" for row in self.rows if row.note)
        return "\n".join(out)

    def markdown(self) -> str:
        """The table as GitHub Markdown (for docs/benchmarks.md)."""
        out = [
            "| metric | isthmus | HAProxy | isthmus / HAProxy | target | |",
            "| --- | ---: | ---: | ---: | --- | --- |",
        ]
        for row in self.rows:
            unit = f" {row.unit}" if row.unit else ""
            haproxy = _fmt(row.haproxy) + (unit if row.haproxy is not None else "")
            ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
            out.append(
                f"| {row.metric} | {_fmt(row.isthmus)}{unit} | {haproxy} | {ratio} | "
                f"{row.target} | {row.verdict} |"
            )
        return "\n".join(out)

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": [
                {
                    "metric": r.metric,
                    "isthmus": r.isthmus,
                    "haproxy": r.haproxy,
                    "unit": r.unit,
                    "ratio": r.ratio,
                    "target": r.target,
                    "verdict": r.verdict,
                    "note": r.note,
                }
                for r in self.rows
            ],
            "notes": self.notes,
        }

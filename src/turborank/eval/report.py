"""Result files and tables: a JSON per run with every number and setting, and markdown like the model card's.

The summary table has one row per system and one column per dataset (its headline measure), plus
each suite's average when the suite has several datasets, in points (x100) as the card prints them.
The detail table has every measure and the latency per (dataset, system).
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .data import DatasetError
from .suites import SUITES

FORMAT = "turborank-eval/1"
LIBRARIES = (
    "turborank",
    "torch",
    "numpy",
    "tokenizers",
    "bm25s",
    "PyStemmer",
    "pytrec-eval-terrier",
    "httpx",
)


def environment() -> dict[str, Any]:
    """Library versions, Python and the machine, so a number can be traced to what produced it."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "libraries": versions,
    }


def write_results(
    records: Iterable[dict[str, Any]], path: Path, command: Sequence[str], **extra: Any
) -> None:
    """Write the result JSON: the records, the command line, the environment and ``extra`` notes."""
    payload = {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(command),
        "environment": environment(),
        **extra,
        "records": list(records),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_results(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Records of several result JSONs; a later record for the same (system, dataset, split) wins."""
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for path in paths:
        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path}: cannot read a result JSON ({exc})") from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise DatasetError(f"{path}: not a turborank eval result (expected format {FORMAT!r})")
        for record in payload["records"]:
            merged[(record["system"], record["dataset"], record["split"])] = record
    return list(merged.values())


def summary_table(records: Sequence[dict[str, Any]]) -> str:
    """Rows: systems; columns: each dataset's headline measure, then suite averages (x100)."""
    columns = _unique((r["dataset"], r["split"], r["headline"]) for r in records)
    systems = _unique(r["system"] for r in records)
    by_key = {(r["system"], r["dataset"], r["split"]): r for r in records}
    suites = _suite_columns(records)
    header = ["Model", *(f"{d} ({s}) {m}" for d, s, m in columns), *(label for label, _ in suites)]
    rows = []
    for system in systems:
        cells = []
        for dataset, split, measure in columns:
            record = by_key.get((system, dataset, split))
            cells.append(_points(record["measures"][measure]) if record else "-")
        for _, members in suites:
            values = [by_key.get((system, d, s)) for d, s, _ in members]
            if all(values):
                mean = sum(r["measures"][m] for r, (_, _, m) in zip(values, members, strict=True)) / len(
                    values
                )
                cells.append(_points(mean))
            else:
                cells.append("-")
        rows.append([f"`{system}`", *cells])
    return _markdown(header, rows)


def detail_table(records: Sequence[dict[str, Any]]) -> str:
    """One block per dataset: every measure, first stage and rerankers side by side, with latency."""
    blocks = []
    for dataset, split in _unique((r["dataset"], r["split"]) for r in records):
        group = [r for r in records if (r["dataset"], r["split"]) == (dataset, split)]
        measures = _unique(m for r in group for m in r["measures"])
        header = ["Model", "stage", *measures, "documents/s", "windows/s", "p50 ms/query", "p95 ms/query"]
        rows = []
        for r in group:
            latency = r.get("latency") or {}
            rows.append(
                [
                    f"`{r['system']}`",
                    r["stage"],
                    *(_points(r["measures"][m]) if m in r["measures"] else "-" for m in measures),
                    *_latency_cells(latency),
                ]
            )
        first = group[0]
        queries = f"{first['queries']}{' sampled' if first.get('sampled') else ''} queries"
        title = (
            f"**{dataset}** ({split}, {queries}, top {first['k']} of {first['first_stage']}"
            f"{_rules_text(first.get('rules'))})"
        )
        blocks.append(f"{title}\n\n{_markdown(header, rows)}")
    return "\n\n".join(blocks)


def format_rate(value: float) -> str:
    """A rate with three significant digits (0.0421, 4.21, 42.1), whole numbers from 100 up."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _latency_cells(latency: dict[str, Any]) -> list[str]:
    if not latency:
        return ["-"] * 4
    # Result files written before windows were counted call documents "pairs".
    documents_per_s = latency.get("documents_per_s", latency.get("pairs_per_s"))
    windows_per_s = latency.get("windows_per_s")
    return [
        format_rate(documents_per_s),
        format_rate(windows_per_s) if windows_per_s is not None else "-",
        f"{latency['p50_ms']:,.0f}",
        f"{latency['p95_ms']:,.0f}",
    ]


def _rules_text(rules: dict[str, Any] | None) -> str:
    if not rules:
        return ""
    text = f"; relevant: grade >= {rules['relevance_level']}"
    if rules["ignore_identical_ids"]:
        text += f"; candidates equal to the query id dropped: {rules['identical_ids_dropped']}"
    return f"{text}; protocol: {rules['protocol']}"


def render(records: Sequence[dict[str, Any]]) -> str:
    """The full markdown report: summary, then details."""
    notes = _unique(f"- {r['dataset']}: {r['note']}" for r in records if r.get("note"))
    parts = ["Scores are points (x100).", summary_table(records), detail_table(records)]
    if notes:
        parts.append("Notes:\n" + "\n".join(notes))
    return "\n\n".join(parts) + "\n"


def _suite_columns(records: Sequence[dict[str, Any]]) -> list[tuple[str, list[tuple[str, str, str]]]]:
    columns = []
    for suite in _unique(r["suite"] for r in records if r.get("suite")):
        members = _unique(
            (r["dataset"], r["split"], r["headline"]) for r in records if r.get("suite") == suite
        )
        if len(members) > 1:
            measures = {m for _, _, m in members}
            label = f"{suite} avg ({len(members)} of {len(SUITES[suite])}) {'/'.join(sorted(measures))}"
            columns.append((label, members))
    return columns


def _points(value: float) -> str:
    return f"{value * 100:.2f}"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None

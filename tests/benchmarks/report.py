"""Figures of the benchmarks, printed as they come and collected for BENCHMARKS.md.

Each benchmark calls `figure(...)` for what it measured, with the target when the issue sets one.
`bin/bench` runs every benchmark with BENCHMARKS_REPORT set, and the session's end writes that file:
the machine's description, one table per benchmark, and the profiler findings (profiles.md).
"""

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent.parent
FINDINGS = Path(__file__).resolve().parent / "profiles.md"


@dataclass(frozen=True)
class Figure:
    benchmark: str
    metric: str
    value: str
    target: str = ""
    met: bool | None = None


_figures: list[Figure] = []
_notes: dict[str, list[str]] = {}


def figure(benchmark: str, metric: str, value: str, *, target: str = "", met: bool | None = None) -> None:
    _figures.append(Figure(benchmark, metric, value, target, met))
    verdict = "" if met is None else ("  [target met]" if met else "  [TARGET MISSED]")
    print(f"  {benchmark} | {metric}: {value}" + (f" (target {target})" if target else "") + verdict)


def note(benchmark: str, text: str) -> None:
    """A sentence printed under the benchmark's table (how it was measured, what a figure means)."""
    _notes.setdefault(benchmark, []).append(text)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))]


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    memory = psutil.virtual_memory().total / 2**30
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BASE_DIR, capture_output=True, text=True)
    return (
        f"- CPU: {cpu}, {psutil.cpu_count(logical=True)} logical cores ({psutil.cpu_count(logical=False)} physical)\n"
        f"- Memory: {memory:.1f} GiB; OS: {platform.platform()}; Python {platform.python_version()}\n"
        f"- Load average at the end of the run: {load} (the cores are shared with other work: figures are noisy)\n"
        f"- Commit: {commit.stdout.strip() or 'unknown'}; run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


def report_write(path: Path) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Written by `bin/bench` (every benchmark under `tests/benchmarks/`). Latencies are medians (p50) and",
        "tail percentiles over the samples of one run; the machine is shared, so repeat runs differ by some 10-30%.",
        "",
        "## Machine",
        "",
        machine_description(),
        "",
    ]
    benchmarks: list[str] = []
    for item in _figures:
        if item.benchmark not in benchmarks:
            benchmarks.append(item.benchmark)
    for benchmark in benchmarks:
        lines += [f"## {benchmark}", "", "| metric | value | target | met |", "| --- | --- | --- | --- |"]
        for item in (f for f in _figures if f.benchmark == benchmark):
            met = "" if item.met is None else ("yes" if item.met else "**no**")
            lines.append(f"| {item.metric} | {item.value} | {item.target} | {met} |")
        lines += ["", *_notes.get(benchmark, []), ""]
    if FINDINGS.exists():
        lines += [FINDINGS.read_text().strip(), ""]
    path.write_text("\n".join(lines))

"""`bin/bench --profile`: the measured part of each benchmark under pyinstrument, written to var/benchmarks/."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyinstrument import Profiler

PROFILE_DIR = Path(__file__).resolve().parent.parent.parent / "var" / "benchmarks"


@contextmanager
def profiled(name: str) -> Iterator[None]:
    """Profile the block when BENCH_PROFILE is set (it slows the code down: figures then are not reported)."""
    if not os.environ.get("BENCH_PROFILE"):
        yield
        return
    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        path = PROFILE_DIR / f"{name}.txt"
        path.write_text(profiler.output_text(unicode=True, show_all=False))
        print(f"  profile of {name}: {path}")

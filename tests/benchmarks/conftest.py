import os
from pathlib import Path

import pytest

from tests.benchmarks.report import report_write


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Benchmarks run only when asked for by path (`bin/test tests/benchmarks -s`); they print figures."""
    if any("benchmarks" in str(arg) for arg in config.args):
        return
    skip = pytest.mark.skip(reason="benchmark: run with `bin/test tests/benchmarks -s` or `bin/bench`")
    for item in items:
        if "benchmarks" in str(item.path):
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """`bin/bench` sets BENCHMARKS_REPORT: the figures of this run go to that file (BENCHMARKS.md)."""
    target = os.environ.get("BENCHMARKS_REPORT")
    if target:
        report_write(Path(target))

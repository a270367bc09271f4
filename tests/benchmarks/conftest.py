import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Benchmarks run only when asked for by path (`bin/test tests/benchmarks -s`); they print figures."""
    if any("benchmarks" in str(arg) for arg in config.args):
        return
    skip = pytest.mark.skip(reason="benchmark: run with `bin/test tests/benchmarks -s`")
    for item in items:
        if "benchmarks" in str(item.path):
            item.add_marker(skip)

"""The documentation stands alone in a clone and names only modules and functions that exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = ("config", "console", "core", "tenants", "bots", "knowledge", "leads", "matching", "tests", "bin")
CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(doc: Path) -> list[str]:
    return CODE_SPAN.findall(doc.read_text())


def words_of_the_code() -> set[str]:
    """Every identifier and string word of the product code (functions, fields, statuses, wire names)."""
    words: set[str] = set()
    for package in PACKAGES[:-2]:
        for path in (ROOT / package).rglob("*.py"):
            words.update(re.findall(r"\w+", path.read_text()))
    return words


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_every_path_named_in_the_docs_exists(doc):
    missing = [span for span in code_spans(doc) if span.split("/")[0] in PACKAGES and "/" in span
               and " " not in span and not (ROOT / span.split("::")[0].rstrip("/")).exists()]  # fmt: skip
    assert not missing, f"{doc.name} names paths that do not exist: {missing}"


def test_every_function_named_in_the_architecture_exists():
    names = words_of_the_code()
    doc = ROOT / "docs" / "architecture.md"
    identifiers = {span for span in code_spans(doc) if re.fullmatch(r"[a-z]+(_[a-z]+)+", span)}
    missing = sorted(identifiers - names)
    assert not missing, f"docs/architecture.md names functions that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
def test_the_docs_never_point_outside_the_repository(doc):
    text = doc.read_text()
    assert "../" not in text
    assert "DESIGN.md" not in text

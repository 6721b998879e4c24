"""Links in README.md and docs/ lead somewhere: each relative link names a file that exists
and, with a ``#fragment``, a heading of that file (GitHub's anchors)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def test_anchor_is_githubs():
    assert anchor("Search (PostgreSQL + pgvector)") == "search-postgresql--pgvector"
    assert anchor("Batching, twice") == "batching-twice"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        name, _, fragment = target.partition("#")
        path = (doc.parent / name).resolve() if name else doc
        missing_heading = (
            path.exists() and fragment and path.suffix == ".md" and fragment not in anchors(path)
        )
        if not path.exists() or missing_heading:
            broken.append(target)
    assert not broken, f"{doc.name}: links that lead nowhere: {broken}"


def test_architecture_names_every_module():
    """docs/architecture.md's module tables cannot drift: each module of serve_app/ is named
    there (a capability's role files by their common names: `routes.py`, `serving.py`, ...)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted((ROOT / "serve_app").rglob("*.py"))
    missing = [
        str(path.relative_to(ROOT))
        for path in modules
        if path.name not in ("__init__.py", "__main__.py") and f"`{path.name}`" not in text
    ]
    assert not missing, f"not in docs/architecture.md: {missing}"

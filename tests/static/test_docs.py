"""README.md is a front page: short, with the reference in docs/; every relative link in the
README and the docs pages leads to a file that exists (and an anchor to a heading of it)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md")), REPO_ROOT / "bench" / "README.md"]

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.M)


def prose(page: Path) -> str:
    """The page without its fenced code blocks (a `#` there is a comment, not a heading)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


@cache
def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces
    as hyphens."""
    return {re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in HEADING.findall(prose(page))}


def relative_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(prose(page)) if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def test_readme_is_a_front_page_of_at_most_300_lines() -> None:
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 300


def test_docs_has_at_least_four_pages() -> None:
    assert len(list(DOCS.glob("*.md"))) >= 4


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, broken


def test_the_link_check_sees_links_and_anchors() -> None:
    assert "docs/design.md" in relative_links(README)
    assert "firestore-data-model" in anchors(DOCS / "cloud-runtime.md")
    assert "messages-json-schema-version-1" in anchors(DOCS / "cloud-runtime.md")

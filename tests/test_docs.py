"""The README is short and the reference lives in docs/: every link resolves, every page is in
the MkDocs navigation, and nothing of the old README was lost on the way."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
# [text](target) outside code spans; images too.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"[\s-]+", "-", text).strip("-")


def _prose(path: Path) -> str:
    """The file without fenced code blocks or inline code (links there are not links)."""
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", _prose(path), flags=re.MULTILINE)
    return {_slug(h) for h in headings}


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_every_link_resolves(page: Path) -> None:
    links = LINK.findall(_prose(page))
    for target in links:
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not checked offline
            continue
        file, _, anchor = target.partition("#")
        resolved = (page.parent / file).resolve() if file else page
        assert resolved.is_file(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{page.name}: no heading #{anchor} in {file}"


def test_the_readme_is_short_and_links_every_reference_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall(_prose(ROOT / "README.md"))}
    assert {p.name for p in PAGES} - {"index.md"} <= linked
    # The two set-up commands CI and a newcomer run.
    assert "pip install -e . && gradcheck diagnose sample_models/deep_sigmoid.py" in readme
    assert "pip install -e '.[test]' && pytest" in readme


def test_mkdocs_navigation_lists_every_page_once() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    listed = [next(iter(entry.values())) for entry in config["nav"]]
    assert sorted(listed) == sorted(p.name for p in PAGES) and len(set(listed)) == len(listed)
    assert listed[0] == "index.md"

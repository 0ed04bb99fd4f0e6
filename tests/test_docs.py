"""The README and docs link only to files inside the repository, and those files exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _documents():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_relative_link_stays_inside_the_repository_and_exists():
    for doc in _documents():
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), f"{doc.name} links outside the repo: {target}"
            assert resolved.exists(), f"{doc.name} links to a missing file: {target}"


def test_the_design_a_reader_needs_is_in_the_repository():
    design = (ROOT / "docs" / "design.md").read_text()
    for part in ("Layers", "DynamoDB contract", "Flows", "Security"):
        assert part in design

"""Every link in the project's documents leads somewhere: a relative link names a file of the repository,
and a `#fragment` names a heading of that file (as GitHub makes anchors: lower case, punctuation
dropped, spaces to hyphens)."""
import re
from pathlib import Path

import pytest

from conftest import ROOT

DOCUMENTS = sorted({ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("analyzer/*.md"),
                    *ROOT.glob("examples/**/*.md"), *ROOT.glob("preload/*.md")})
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    out, seen = set(), {}
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [m.group(1) for m in LINK.finditer(text)]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_lead_somewhere(doc):
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not followed offline
            continue
        file_part, _, fragment = target.partition("#")
        dest = (doc.parent / file_part).resolve() if file_part else doc
        if not dest.exists() or ROOT not in (dest, *dest.parents):
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target}: {dest.name} has no heading #{fragment}")
    assert not broken, f"{doc.relative_to(ROOT)}:\n  " + "\n  ".join(broken)


def test_the_front_door_is_short():
    """README is the way in (what it is, install, the two commands, where to read on): a couple of
    screens, with the manual in docs/."""
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines; the rest belongs in docs/"
    for doc in ("guide.md", "reference.md", "support.md", "internals.md"):
        assert (ROOT / "docs" / doc).exists(), f"docs/{doc} is missing"

"""Every ```python block of the README and the documentation pages runs.

The blocks of one page run in order, in one namespace, in a fresh temporary directory (a later
block may use what an earlier one made, as a reader following the page would). A block that is
illustrative only (it needs an S3 bucket, a cluster or a plug-in that does not exist) is marked by
an HTML comment ``<!-- skip: reason -->`` on the line before its fence, and is left out, with its
reason checked to be present. Sizes in the pages are small enough that each block finishes in well
under a minute on 2 cores, or the text says how long it takes.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
SKIP = re.compile(r"<!--\s*skip:\s*(.+?)\s*-->\s*$")


def pages() -> list[Path]:
    docs = ROOT / "docs"
    found = [ROOT / "README.md"]
    found += sorted(p for p in docs.rglob("*.md") if not {"_build", "auto_examples"} & set(p.relative_to(docs).parts))
    return found


def blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line, code, skip reason or None) of every ```python fence."""
    out = []
    for match in FENCE.finditer(text):
        if match.group(1) != "python":
            continue
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = SKIP.search(before)
        out.append((line, match.group(2), skip.group(1) if skip else None))
    return out


def test_blocks_are_found():
    text = "intro\n<!-- skip: needs a bucket -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n```toml\na = 1\n```\n"
    assert blocks(text) == [(3, "x = 1\n", "needs a bucket"), (7, "y = 2\n", None)]
    assert all(p.exists() for p in pages()) and len(pages()) > 10
    assert ROOT / "README.md" in with_blocks() and ROOT / "docs" / "store-format.md" not in with_blocks()


def with_blocks() -> list[Path]:
    return [p for p in pages() if any(skip is None for _, _, skip in blocks(p.read_text()))]


@pytest.mark.slow
@pytest.mark.parametrize("page", with_blocks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_blocks_run(page, tmp_path, monkeypatch):
    runnable = [(line, code) for line, code, skip in blocks(page.read_text()) if skip is None]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        for line, code in runnable:
            try:
                exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
            except Exception as exc:
                raise AssertionError(f"{page.relative_to(ROOT)}, the block at line {line} failed: "
                                     f"{type(exc).__name__}: {exc}") from exc
    finally:
        plt.close("all")

"""The built documentation site renders in headless Chromium: titles, assets, no script errors.

``.ci/run`` builds the site (``python -m sphinx -W --keep-going -b html docs docs/_build/html``)
before the tests, so this runs in CI; elsewhere it skips, saying why, when the site has not been
built or Debian's chromium is not installed.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
PAGES = {
    "index.html": "eqflow",
    "api/generated/eqflow.run.html": "eqflow.run",
    "systems/ising.html": "ising: the 2D Ising model",
}
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\]\s*\"(.*)\", source: (\S+)")


def console_errors(stderr: str) -> list[str]:
    """Console messages that report an error (Chromium logs console.error like console.log, so
    the text is what tells them apart)."""
    return [f"{m.group(1)} ({m.group(2)})" for m in CONSOLE.finditer(stderr) if re.search(r"(?i)uncaught|error",
                                                                                         m.group(1))]


def local_assets(dom: str, page: Path) -> list[Path]:
    """Scripts, stylesheets and images a page loads from the site itself."""
    out = []
    for ref in re.findall(r'<(?:script|link|img)\b[^>]*?\b(?:src|href)="([^"#?]+)', dom):
        url = urlparse(ref)
        if url.scheme in ("", "file") and not ref.endswith((".html", "/")):
            out.append(Path(unquote(url.path)) if url.scheme == "file" else (page.parent / unquote(ref)).resolve())
    return out


def test_console_errors_are_found():
    err = ('[1:1:1207/0:INFO:CONSOLE:1] "Uncaught ReferenceError: x is not defined", source: file:///a.html (1)\n'
           '[1:1:1207/0:INFO:CONSOLE:1] "[PST]: Changed to auto mode", source: file:///b.js (1)\n')
    assert console_errors(err) == ["Uncaught ReferenceError: x is not defined (file:///a.html)"]


@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_in_headless_chromium(name):
    page = SITE / name
    if not page.exists():
        pytest.skip(f"the docs site is not built ({page.relative_to(ROOT)} is missing; .ci/run builds it)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it): rendering not checked")
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
            "--window-size=1200,2000", "--dump-dom", page.as_uri()]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    assert title is not None and title.group(1).strip().startswith(PAGES[name]), title
    assert "bd-main" in dom and "<h1" in dom, "the theme's layout did not render"
    assert console_errors(done.stderr) == []
    missing = [str(p) for p in local_assets(dom, page) if not p.exists()]
    assert missing == [], f"assets the page loads are missing: {missing}"

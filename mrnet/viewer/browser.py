"""Headless Chromium: a page's DOM after its scripts ran, and screenshots. For the tests and the docs' picture.

Chromium's command line does both without a driver library: --dump-dom prints the DOM once
the page (and, with a virtual time budget, its image decoding and promises) has settled, and
--screenshot writes a PNG. State is handed to a page through its URL hash, which the viewer
reads, so a test drives the real page without a server.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--mute-audio",
    "--run-all-compositor-stages-before-draw",  # screenshots show the page as last painted, not half-drawn tiles
)
VIRTUAL_TIME_MS = 10000  # time the page's timers and image decoding may take before the DOM is read


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome binary on PATH, or None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def page_url(path: Path, fragment: str = "") -> str:
    """The file:// URL of a page, with an optional #fragment (the viewer's state)."""
    url = Path(path).resolve().as_uri()
    return f"{url}#{fragment}" if fragment else url


def _run(arguments: list[str], timeout: float) -> subprocess.CompletedProcess:
    binary = find_chromium()
    if binary is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: no state carried between runs
        command = [binary, *FLAGS, f"--user-data-dir={profile}", *arguments]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)


def dump_dom(url: str, timeout: float = 60) -> str:
    """The page's serialised DOM after load, scripts and the virtual time budget."""
    return _run([f"--virtual-time-budget={VIRTUAL_TIME_MS}", "--dump-dom", url], timeout).stdout


def screenshot(url: str, out: Path, size: tuple[int, int] = (1280, 900), timeout: float = 60) -> Path:
    """A PNG of the page at the given window size (width, height)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    width, height = size
    _run(
        [f"--virtual-time-budget={VIRTUAL_TIME_MS}", f"--window-size={width},{height}", f"--screenshot={out}", url],
        timeout,
    )
    return out

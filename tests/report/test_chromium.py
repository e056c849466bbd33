"""report.html opens in headless Chromium without a single console message (no blocked
resource, no script, no SVG error) and paints its charts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bot.config import DEFAULT_OFFICIAL_DOMAINS
from bot.report.output import build_report, write_report
from storage.engine import Database
from tests.report.store import NOW, build

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (.ci/run installs Debian's chromium)"
)
#: The green of answered questions in the charts (bot/report/charts.py).
GREEN = (0x2C, 0xA0, 0x2C)


def _open(page: Path, shot: Path, profile: Path) -> list[str]:
    """Load ``page`` in headless Chromium, screenshot it, return its console messages."""
    assert CHROMIUM is not None
    run = subprocess.run(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",  # the test may run as root in a container
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,3200",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    # Every console message of the page, whatever its level, is logged as ":CONSOLE".
    return [line for line in run.stderr.splitlines() if re.search(r":CONSOLE\b", line)]


async def test_report_renders_in_chromium(db: Database, tmp_path: Path) -> None:
    await build(db)
    report = await build_report(db, DEFAULT_OFFICIAL_DOMAINS, now=NOW)
    _, html = write_report(report, tmp_path / "out")

    # The check itself sees trouble: a page that tries to fetch and to run something.
    broken = tmp_path / "broken.html"
    broken.write_text(
        html.read_text(encoding="utf-8").replace(
            "</body>", "<img src='https://example.org/x.png'><script>1</script></body>"
        ),
        encoding="utf-8",
    )
    assert len(_open(broken, tmp_path / "broken.png", tmp_path / "profile-1")) == 2

    shot = tmp_path / "report.png"
    assert _open(html, shot, tmp_path / "profile-2") == []
    image = Image.open(shot).convert("RGB")
    assert image.size == (1100, 3200)
    rgb = np.asarray(image, dtype=np.int16)
    inked = int(np.any(rgb != 255, axis=2).sum())
    assert inked > rgb.shape[0] * rgb.shape[1] // 50, "the page is (nearly) blank"
    # The charts were painted: the answered bars' green is on the page.
    green = np.all(np.abs(rgb - np.array(GREEN, dtype=np.int16)) <= 12, axis=2)
    assert int(green.sum()) > 500

"""The month's report as a person sees it: report.html rendered by headless Chromium, report.pdf's first
pages rasterised by poppler's pdftoppm and its text read by pdftotext (Debian's chromium and
poppler-utils); the page is not blank and its table and plots are there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
WIDTH, HEIGHT = 1280, 2400
# Colours drawn only by the report: table cells met / missed, and plot colours (bes_report/plots.py).
CELL_OK, CELL_BAD = (0xDA, 0xFB, 0xE1), (0xFF, 0xEB, 0xE9)
UP, CRITICAL, DOWNTIME = (0x2D, 0xA4, 0x4E), (0xCF, 0x22, 0x2E), (0x09, 0x69, 0xDA)


def _near(img: Image.Image, rgb: tuple[int, int, int], tol: int = 6) -> int:
    """Pixels within ``tol`` of ``rgb`` in every channel."""
    px = np.asarray(img.convert("RGB"), dtype=np.int16)
    return int((np.abs(px - np.array(rgb, dtype=np.int16)) <= tol).all(axis=2).sum())


def _ink(img: Image.Image) -> float:
    """Share of pixels that are not (nearly) white."""
    return float((np.asarray(img.convert("L")) < 245).mean())


def _run(cmd: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group and leave nothing of it running."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # helpers Chromium may have left
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="module")
def screenshot(month_report, tmp_path_factory) -> Image.Image:
    work = tmp_path_factory.mktemp("chromium")
    png = work / "page.png"
    html = month_report.out / "report.html"
    done = _run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                 f"--user-data-dir={work / 'profile'}", f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={png}",
                 html.as_uri()])
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-800:]}"
    return Image.open(png)


def test_html_is_self_contained(month_report):
    page = (month_report.out / "report.html").read_text()
    assert not re.findall(r'(?:src|href)="(?!data:image/png;base64,|#)', page)
    assert "<script" not in page and "<link" not in page and "url(" not in page
    assert page.count("data:image/png;base64,") == 1 + 3 * 2 + 1  # overview, 3 probed sites x 2, DELTA's jobs


def test_chromium_shows_table_and_plots(screenshot):
    assert screenshot.size == (WIDTH, HEIGHT)
    assert _ink(screenshot) > 0.12, "the page looks blank"
    assert _near(screenshot, CELL_OK) > 1000 and _near(screenshot, CELL_BAD) > 2000, "no coloured table cells"
    assert _near(screenshot, UP) > 20_000, "no UP bars"
    assert _near(screenshot, DOWNTIME) > 1000, "no DOWNTIME in ALPHA's plot"
    assert _near(screenshot, CRITICAL) > 3000, "no CRITICAL bars"


@pytest.fixture(scope="module")
def pdf_pages(month_report, tmp_path_factory) -> list[Image.Image]:
    work = tmp_path_factory.mktemp("pdf")
    done = _run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "2", str(month_report.out / "report.pdf"),
                 str(work / "page")], timeout=60)
    assert done.returncode == 0, done.stderr
    return [Image.open(p) for p in sorted(work.glob("page-*.png"))]


def test_pdf_pages(pdf_pages):
    first, second = pdf_pages
    assert first.size[0] > first.size[1], "A4 landscape"
    assert _ink(first) > 0.05 and _ink(second) > 0.05, "a blank page"
    assert _near(first, CELL_OK, 4) > 200 and _near(first, CELL_BAD, 4) > 300, "no coloured table cells on page 1"
    assert _near(second, UP, 8) > 2000 and _near(second, DOWNTIME, 8) > 200, "no availability plot on page 2"


def test_pdf_text_and_images(month_report):
    pdf = str(month_report.out / "report.pdf")
    text = " ".join(_run(["pdftotext", "-layout", pdf, "-"], timeout=60).stdout.split())
    for needle in ("Site availability and reliability — 2026-11", "2 sites below target", "Availability",
                   "Reliability", "Pilot failure ratio", "BES.ALPHA.cn", "BES.BETA.cn", "BES.GAMMA.cn",
                   "BES.DELTA.cn", "89.3 %", "86.7 %", "88.2 %", "97.1 %", "wn01.alpha.cn", "Worst hours",
                   "2026-11-05 00:00 2026-11-08 00:00 72.0 h 72.0 h"):
        assert needle in text, needle
    listing = _run(["pdfimages", "-list", pdf], timeout=60).stdout.splitlines()[2:]
    images = [line for line in listing if line.split()[2] == "image"]  # not their alpha masks ("smask")
    assert len(images) == 8, listing  # every plot made it into the PDF
    pages = int(re.search(r"Pages:\s+(\d+)", _run(["pdfinfo", pdf], timeout=60).stdout).group(1))
    assert pages >= 3


def test_report_example_png_is_small():
    """The PNG in docs/report.md, made from the demo (docs/report.md says how), stays small."""
    png = Path(__file__).resolve().parents[2] / "docs" / "report-example.png"
    assert png.stat().st_size < 200_000
    with Image.open(png) as img:
        assert _ink(img) > 0.1

"""The page a person opens (pas_orchestrator/report_html.py): self-contained, with the chosen networks and their
intervals, the figures inline, every hypothesis against its winner and each winner's why; opened in a real
headless Chromium (Debian's package), which must render it; and rewritten while a search runs."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fakes import FakeClock, FakeExecutor, controller, drive

from pas_orchestrator.report_html import Refresher, refresh

VIDEOS = 64


def _finished_search(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 1-iteration search driven in-process, its results measured on 64 videos with per-video records."""
    ex = FakeExecutor()
    c = controller(tmp_path, ex)
    drive(c)
    (jid,) = ex.active()
    ex.succeed(jid, top1=50.0, gflops=c.ledger.snapshot().iteration(0)[0].gflops, videos=VIDEOS)
    drive(c)
    for h in c.ledger.snapshot().iteration(1):
        job = next(j for j, x in ex.jobs.items() if x.task.out_dir == h.out_dir)
        ex.succeed(job, top1={"s": 56.25, "c": 53.125}[h.op], gflops=h.gflops, videos=VIDEOS)
    drive(c)
    return c


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag in ("link", "script") or (tag == "a" and (a.get("href") or "").startswith("http")):
            self.links.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_page_holds_the_search_and_needs_nothing_else(tmp_path: Path) -> None:
    c = _finished_search(tmp_path)
    files = refresh(c.ledger, tmp_path / "report")
    page = _Page()
    page.feed(files["html"].read_text())
    text = " ".join(page.text)
    assert "The chosen networks" in text and "Every hypothesis" in text and "Decisions" in text
    assert not page.links  # no script, no stylesheet or page fetched: one file is the whole report
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert base64.b64decode(page.images[0].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert re.search(r"56\.25 \S*\s*\d+\.\d.\d+\.\d", text)  # the winner's top-1 and its interval
    assert "top-1 against s on the same 64 videos (paired, 95%)" in text  # the winner's why
    assert "not distinguishable" in text  # c against s: 2 videos of 64


def test_chromium_renders_it(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium here (apt-get install chromium; .ci/run installs it as root)")
    c = _finished_search(tmp_path)
    html = refresh(c.ledger, tmp_path / "report")["html"]
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path}/ud"]
    dom = subprocess.run([browser, *flags, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "The chosen networks" in dom.stdout and "not distinguishable" in dom.stdout
    shot = tmp_path / "report.png"
    run = subprocess.run([browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", html.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.stat().st_size > 20_000, run.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:  # something drawn: not a blank page
        colours = im.convert("L").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 20


def test_a_running_search_rewrites_its_page_once_a_minute_when_something_happened(tmp_path: Path) -> None:
    c = _finished_search(tmp_path)
    clock = FakeClock()
    page = Refresher(c.ledger, tmp_path / "report", every_s=60.0, clock=clock.now)
    page()
    assert not (tmp_path / "report" / "report.html").exists()  # not in its first minute
    clock.advance(61)
    page()
    assert not (tmp_path / "report" / "report.html").exists()  # nothing recorded since it started
    from pas_orchestrator.core.actions import LogEvent

    c.ledger.apply(LogEvent("note", "something happened"))
    page()
    assert (tmp_path / "report" / "report.html").is_file() and page.written == 1
    page()
    assert page.written == 1  # within the minute: not again
    page.close()
    assert page.written == 2  # the end: the page is current


def test_a_page_written_while_b_still_trains_draws_its_figures_without_a_warning(tmp_path: Path) -> None:
    import warnings

    c = controller(tmp_path, FakeExecutor())
    drive(c)  # B submitted, nothing trained yet: the figures have no point and no legend entry
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "No artists with labels found to put in legend"
        files = refresh(c.ledger, tmp_path / "report")
    assert files["html"].is_file() and files["plot"].is_file()

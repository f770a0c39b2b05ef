"""One page a person opens: ``runs/NAME/report/report.html``, self-contained (its figures inline as data URIs, no
script, no network), so it reads from a login node by copying one file.

It holds what `pas report` writes apart: the chosen networks (paper Table 1) with top-1's 95% interval, the
figures, every hypothesis with its interval and its paired difference against its iteration's winner, each
winner's why (the rule, the ties, the comparison on the same videos), the compute used and the studies run.
`pas report` writes it; a foreground `pas search` rewrites it as the search advances (at most once a minute).
"""

from __future__ import annotations

import base64
import html
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pas_orchestrator import replicas
from pas_orchestrator.comparisons import vs_winner
from pas_orchestrator.ledger import HypRec, HypState, Snapshot
from pas_orchestrator.ledger.records import EventRec, is_study
from pas_orchestrator.report import (
    chosen_path,
    compute_text,
    network_name,
    strategy_of,
    top5_text,
    videos_text,
    write_report,
)

log = logging.getLogger(__name__)
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1.5em; max-width: 70em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td.text { text-align: left; }
tr.winner td { font-weight: bold; } .muted { color: #777; } img { max-width: 100%; border: 1px solid #eee; }
li { margin: 0.3em 0; }
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _ci(h: HypRec) -> str:
    ci = h.top1_interval
    return "-" if ci is None else f"{ci[0]:.1f}&ndash;{ci[1]:.1f}"


def _row(cells: list[str], cls: str = "", text: int = 2) -> str:
    """A table row; its first ``text`` cells are words (left-aligned), the rest figures."""
    tds = "".join(f'<td class="text">{c}</td>' if i < text else f"<td>{c}</td>" for i, c in enumerate(cells))
    return f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>"


def _table(head: list[str], rows: list[str]) -> str:
    return ("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _chosen(snap: Snapshot) -> str:
    rows = [_row([_e(network_name(snap, h)), _e(h.path or "-"), f"{h.top1:.2f}", _ci(h), _e(top5_text(h)),
                  f"{h.gflops:.4g}", _e(videos_text(h))])
            for h in chosen_path(snap) if h.top1 is not None and h.top5 is not None and h.gflops is not None]
    return _table(["model", "reduction", "top-1 %", "95% interval", "top-5 %", "GFLOPs/view", "test videos"], rows)


def _versus(snap: Snapshot, h: HypRec) -> str:
    c = vs_winner(snap, h)
    if c is None:
        return "-"
    verdict = "" if c.distinguishable else ' <span class="muted">not distinguishable</span>'
    return f"{c.difference:+.2f} [{c.low:+.2f}, {c.high:+.2f}]{verdict}"


def _every(snap: Snapshot) -> str:
    rows = []
    for h in snap.hypotheses:
        if h.kind != "pas":
            continue
        rows.append(_row([_e(f"{h.iteration}-{h.op}"), _e(h.path or "-"), _e(h.state.value),
                          "-" if h.top1 is None else f"{h.top1:.2f}", _ci(h), _versus(snap, h),
                          "-" if h.gflops is None else f"{h.gflops:.4g}"],
                         "winner" if h.winner else "", text=3))
    return _table(["hypothesis", "path", "state", "top-1 %", "95% interval", "against the winner (points)",
                   "GFLOPs/view"], rows)


def _figure(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(alt)}</figcaption></figure>")


def _decisions(snap: Snapshot, whys: dict[int, str]) -> str:
    items = [f"<li><b>iteration {h.iteration}: {_e(h.path)}</b> &mdash; {_e(whys.get(h.id, ''))}</li>"
             for h in snap.hypotheses if h.winner and h.kind == "pas"]
    return "<ul>" + "".join(items) + "</ul>" if items else '<p class="muted">no iteration has ended yet</p>'


def _replicas(snap: Snapshot) -> str:
    rows = replicas.table_rows(snap)
    if not rows:
        return ""
    return (f"<h2>Replicas</h2><p>{_e(replicas.NOTE[0].upper() + replicas.NOTE[1:])}; the tables above show each "
            "network's mean over its replicas.</p>"
            + _table(list(replicas.HEAD), [_row([_e(c) for c in r], "winner" if r[-1] == "winner" else "", text=3)
                                           for r in rows]))


def _studies(snap: Snapshot) -> str:
    rows = [_row([_e(h.kind.removeprefix("study-")), _e(h.op), _e(h.state.value),
                  "-" if h.top1 is None else f"{h.top1:.2f}", _ci(h)], text=3)
            for h in snap.hypotheses if is_study(h.kind)]
    if not rows:
        return '<p class="muted">none run (<code>pas study</code>)</p>'
    return _table(["study", "row", "state", "top-1 %", "95% interval"], rows)


def write_html(raw: Snapshot, out: Path, figures: dict[str, Path], whys: dict[int, str]) -> Path:
    """``out/report.html``; ``figures``: the PNGs to inline by name; ``whys``: each winner's why, by row id. With
    replicas a network's figures are its mean over them (what the search chose on), and a table shows them."""
    snap = replicas.pooled(raw)
    s = snap.search
    done = sum(1 for h in snap.hypotheses if h.state == HypState.DONE)
    captions = {"plot": "Every trained hypothesis and the chosen path (bars: 95% intervals)",
                "speedup": "Measured speedup against the FLOPs reduction (trusted timings only)",
                "rungs": "Top-1 at each rung of successive halving"}
    title = f"{'gradient search' if strategy_of(snap) == 'gradient' else 'PAS search'} {s.name}"
    body = [f"<h1>{_e(title)}</h1>",
            f"<p>{_e(s.state.value)}{_e(' (' + s.error + ')') if s.error else ''} on {_e(s.cluster)}; "
            f"{done} of {len(snap.hypotheses)} rows done; compute used: {_e(compute_text(snap))}. "
            f'<span class="muted">Written {_e(time.strftime("%Y-%m-%d %H:%M:%S"))}.</span></p>',
            "<h2>The chosen networks</h2>", _chosen(snap),
            '<p class="muted">Top-1 intervals: Wilson, 95%, over the test videos. Against the winner: the '
            "difference in top-1 points on the same videos with Newcombe's paired 95% interval; not "
            "distinguishable where it holds 0.</p>",
            *(_figure(p, captions.get(k, k)) for k, p in figures.items() if p.suffix == ".png" and p.is_file()),
            "<h2>Every hypothesis</h2>", _every(snap),
            "<h2>Decisions</h2>", _decisions(snap, whys), _replicas(raw),
            "<h2>Studies</h2>", _studies(snap)]
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")
    path = out / "report.html"
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(page)
    tmp.replace(path)
    return path


def winner_whys(events: Sequence[EventRec]) -> dict[int, str]:
    """Each winner's why, by its row id, from the ledger's winner events ("iteration I: OP wins (WHY)")."""
    out = {}
    for e in events:
        if e.kind == "winner" and e.hypothesis_id is not None and " wins (" in e.message:
            out[e.hypothesis_id] = e.message.split(" wins (", 1)[1].removesuffix(")")
    return out


def refresh(ledger: Any, out: Path) -> dict[str, Path]:
    """The report of the search in ``ledger`` (a ``Ledger``), the page included: what `pas report` and a
    foreground `pas search` write."""
    snap = ledger.snapshot()
    files = write_report(snap, out)
    files["html"] = write_html(snap, out, {k: v for k, v in files.items() if v.suffix == ".png"},
                               winner_whys(ledger.events(100_000)))
    return files


class Refresher:
    """Rewrites a running search's report (its page included) once ``every_s`` seconds have passed and something
    was recorded since: not in the first ``every_s`` seconds (a short search's report is `pas report`'s), and
    once more at the end when it wrote one on the way. A failure is logged once; the search goes on."""

    def __init__(self, ledger: Any, out: Path, every_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger, self.out, self.every_s, self.clock = ledger, out, every_s, clock
        self._due = clock() + every_s
        self._seen = ledger.last_event_id()
        self.written = 0
        self._failed = False

    def __call__(self, snap: Snapshot | None = None) -> None:
        if self.clock() < self._due:
            return
        last, _ = self.ledger.events_after(self._seen, 1)
        if last == self._seen:
            return
        self._seen, self._due = self.ledger.last_event_id(), self.clock() + self.every_s
        self._write()

    def close(self) -> None:
        if self.written:
            self._write()

    def _write(self) -> None:
        try:
            refresh(self.ledger, self.out)
            self.written += 1
        except Exception as exc:  # the report is a view: the search must not stop for it
            if not self._failed:
                log.warning("the report of %s could not be written (the search goes on): %s", self.out, exc)
                self._failed = True

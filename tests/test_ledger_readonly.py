"""A ledger on storage this process cannot write: read, in full (its -wal file too), never written."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pas_orchestrator.core.actions import (
    AddHypotheses,
)
from pas_orchestrator.errors import LedgerError
from pas_orchestrator.ledger import Ledger, NewHypothesis


def _hyp(it: int, op: str, **kw: object) -> NewHypothesis:
    return NewHypothesis(iteration=it, op=op, kind="pas", path=op, out_dir=f"/runs/{it}-{op}", **kw)  # type: ignore



def _read_only_share(folder: Path, share: Path) -> list[str]:
    """``folder`` seen read-only at ``share`` (a read-only bind mount as root: permissions do not bind root; else
    the files and folder lose their write permissions); the command that undoes it."""
    share.mkdir()
    if os.geteuid() == 0:
        mount = subprocess.run(f"mount --bind {folder} {share} && mount -o remount,bind,ro {share}", shell=True,
                               capture_output=True, text=True)
        if mount.returncode != 0:
            pytest.skip(f"no read-only bind mount here: {mount.stderr.strip()}")
        return ["umount", str(share)]
    share.rmdir()
    shutil.copytree(folder, share)
    for p in share.iterdir():
        p.chmod(0o444)
    share.chmod(0o555)
    return ["chmod", "-R", "u+w", str(share)]


def _search_of_two(folder: Path) -> Ledger:
    """A ledger in ``folder`` (made) holding search s1 with hypotheses 1-s and 1-t, its lease held."""
    folder.mkdir()
    led = Ledger(folder / "ledger.sqlite")
    led.acquire_lease()
    led.init_search("s1", {}, "h", "local")
    led.apply(AddHypotheses((_hyp(1, "s"), _hyp(1, "t"))))
    return led


def test_a_ledger_on_read_only_storage_is_read_and_not_written(tmp_path: Path) -> None:
    """A finished search on a read-only share (no -wal / -shm file can be made next to it): it is read, and
    a writer is refused in one line. As root (CI) the share is a read-only bind mount (permissions do not
    bind root); otherwise the folder and files lose their write permissions."""
    folder = tmp_path / "search"
    led = _search_of_two(folder)
    led.release_lease()
    led.close()
    share = tmp_path / "share"
    undo = _read_only_share(folder, share)
    try:
        before = sorted(p.name for p in share.iterdir())
        reader = Ledger(share / "ledger.sqlite", readonly=True)
        assert [h.op for h in reader.snapshot().hypotheses] == ["s", "t"]
        assert reader.last_activity() > 0
        reader.close()
        with pytest.raises(LedgerError, match="read-only, so the search cannot run here"):
            Ledger(share / "ledger.sqlite")
        assert sorted(p.name for p in share.iterdir()) == before
    finally:
        subprocess.run(undo, check=True)


def test_a_read_only_copy_of_a_running_ledger_is_read_whole_with_its_wal(tmp_path: Path) -> None:
    """A search copied while it ran (or after a SIGKILL): its newest transactions are in ledger.sqlite-wal. On
    read-only storage SQLite's immutable mode would ignore that file (the search read as empty: "no search yet");
    the reader must see every committed row."""
    live = tmp_path / "live"
    led = _search_of_two(live)
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in live.iterdir():  # copied while the controller still has it open: the rows are in the -wal file
        shutil.copy2(p, copy / p.name)
    led.close()
    assert (copy / "ledger.sqlite-wal").stat().st_size > 0
    undo = _read_only_share(copy, tmp_path / "share")
    try:
        before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "share").iterdir())
        reader = Ledger(tmp_path / "share" / "ledger.sqlite", readonly=True)
        try:
            snap = reader.snapshot()
        finally:
            reader.close()
        assert snap.search.name == "s1" and [h.op for h in snap.hypotheses] == ["s", "t"]
        assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "share").iterdir()) == before
    finally:
        subprocess.run(undo, check=True)



"""README.md stays true: its `pas flops` example is what the command prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from pas_orchestrator.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_flops_example_is_real_output(capsys: pytest.CaptureFixture[str]) -> None:
    block = re.search(r"```console\n\$ (pas flops [^\n]+)\n(.*?)```", README.read_text(), re.S)
    assert block, "README.md lost its `pas flops` example"
    command, shown = block.group(1), block.group(2)
    assert main(shlex.split(command)[1:]) == 0
    assert capsys.readouterr().out == shown

"""Pure SLURM parts: the marconi100 sbatch script (golden file), sacct parsing, the dry run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pas_orchestrator.config.cluster import load_profile
from pas_orchestrator.executors.sacct import JobStatus, array_index, parse_sacct
from pas_orchestrator.executors.slurm import sbatch_script, to_outcome

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).parents[1]


def test_marconi100_sbatch_script_matches_the_golden_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAS_ACCOUNT", "IscrC_PAS")
    profile = load_profile("marconi100")
    for backbone, name in (("r2plus1d_18", "marconi100_r2plus1d18.sbatch"),
                           ("slowfast_4x16_r50", "marconi100_slowfast.sbatch")):
        text = sbatch_script(profile, backbone, Path("/m100_scratch/userexternal/me/runs/s/submitit/pas-s-i1-b2"),
                             "pas-s-i1-b2", 5, python="/m100/home/me/.conda/envs/pas/bin/python")
        assert text == (GOLDEN / name).read_text(), f"regenerate tests/golden/{name} if the change is intended"


def test_qos_follows_the_node_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAS_ACCOUNT", "x")
    profile = load_profile("marconi100")
    assert profile.resources_for("r2plus1d_18").effective_qos() == "normal"  # 16 nodes
    assert profile.resources_for("slowfast_4x16_r50").effective_qos() == "m100_qos_bprod"  # 32 nodes


SACCT = """\
812_0|pas-s-i1-b1|COMPLETED|0:0|None
812_1|pas-s-i1-b1|FAILED|1:0|NonZeroExitCode
812_2|pas-s-i1-b1|RUNNING|0:0|None
812_3|pas-s-i1-b1|CANCELLED by 0|0:15|None
812_3.batch|batch|CANCELLED|0:15|
812_[4-5,7%2]|pas-s-i1-b1|PENDING|0:0|JobArrayTaskLimit
813|pas-s-i2-b1|OUT_OF_MEMORY|0:125|None
814_0|pas-s-i2-b2|PREEMPTED|0:0|None
814_0|pas-s-i2-b2|RUNNING|0:0|None
"""


def test_parse_sacct() -> None:
    rows = parse_sacct(SACCT)
    st = {k: v[1] for k, v in rows.items()}
    assert st["812_0"].state == "COMPLETED" and st["812_2"].state == "RUNNING"
    assert st["812_1"].state == "FAILED" and st["812_1"].reason == "exit code 1:0"
    assert st["812_3"].state == "CANCELLED"
    assert {k for k in st if k.startswith("812_")} == {f"812_{i}" for i in (0, 1, 2, 3, 4, 5, 7)}
    assert st["812_7"].state == "PENDING" and st["812_7"].reason == "JobArrayTaskLimit"
    assert st["813"].state == "OUT_OF_MEMORY" and "exit code 0:125" in (st["813"].reason or "")
    assert st["814_0"].state == "RUNNING"  # requeued after preemption: the last row wins
    assert rows["812_0"][0] == "pas-s-i1-b1"
    assert array_index("812_4") == 4 and array_index("813") is None


def test_compute_is_elapsed_times_gpus_over_every_run_of_a_requeued_job() -> None:
    text = ("900|pas-s-i1-b1|NODE_FAIL|0:0|None|node1|3600|billing=8,cpu=8,gres/gpu=4,mem=64G,node=1\n"
            "900|pas-s-i1-b1|RUNNING|0:0|None|node2|1800|billing=8,cpu=8,gres/gpu=4,mem=64G,node=1\n"
            "901|pas-s-i1-b2|COMPLETED|0:0|None|node3|7200|cpu=32,gres/gpu:v100=2,node=1\n"
            "902|pas-s-i1-b3|COMPLETED|0:0|None|node1|3600|cpu=16,gres/gpu=4,gres/gpu:v100=4,node=1\n"
            "903|pas-s-i1-b4|COMPLETED|0:0|None|node1|1800|billing=2,cpu=2,mem=1G,node=1\n"
            "904_[0-3]|pas-s-i1-b5|PENDING|0:0|Resources||0|\n")
    st = {k: v[1] for k, v in parse_sacct(text).items()}
    assert (st["900"].compute_hours, st["900"].compute_unit) == (1.5 * 4, "GPU-h")  # both runs, 4 GPUs each
    assert (st["901"].compute_hours, st["901"].compute_unit) == (2 * 2, "GPU-h")  # typed GPUs
    assert st["902"].compute_hours == 4.0  # the untyped total, not counted twice
    assert (st["903"].compute_hours, st["903"].compute_unit) == (0.5 * 2, "CPU-h")  # no GPU: hours x CPUs
    assert st["904_2"].compute_hours is None  # pending: nothing used, nothing known
    assert to_outcome(st["900"]).compute_hours == 6.0 and to_outcome(st["900"]).requeues == 1


def test_parse_captured_sacct_of_slurm_22() -> None:
    """Real output of Slurm 22.05 (tests/data/sacct_slurm22.txt): an array with a failed task
    (steps included), a pending array range, plain jobs and an array of pas."""
    st = {k: v[1] for k, v in parse_sacct((Path(__file__).parent / "data/sacct_slurm22.txt").read_text()).items()}
    assert st["14_0"].state == "COMPLETED" and st["14_1"].state == "FAILED"
    assert st["14_1"].reason == "exit code 3:0"  # not the stale pending reason sacct keeps
    assert st["18_0"].state == "RUNNING"
    assert [st[f"18_{i}"].state for i in range(1, 5)] == ["PENDING"] * 4
    assert st["8"].state == "COMPLETED" and all(st[f"9_{i}"].state == "COMPLETED" for i in range(5))
    assert not any("." in k for k in st)


def test_dry_run_prints_the_hypothesis_array_and_the_worst_case(tmp_path: Path) -> None:
    (tmp_path / "k400").mkdir()
    (tmp_path / "r2plus1d_18_k400.pth").write_bytes(b"")
    env = {"PAS_ACCOUNT": "IscrC_PAS", "PAS_DATA": str(tmp_path), "PAS_WEIGHTS": str(tmp_path),
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "pas_orchestrator", "search", "--job",
                          str(ROOT / "jobs/r2plus1d18_k400.yaml"), "--cluster", "marconi100", "--dry-run"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    # (1 + 5 x 5) jobs x 3 tries x 21 runs (20 time-limit requeues) x 24 h x 64 GPUs + 5 latency jobs x 3 x 0.5 h
    assert ("worst case: 26 jobs x (1 + 2 retries) x (1 + 20 requeues) x 24 h x 64 GPU(s) + 5 latency jobs x "
            "(1 + 2) x 0.5 h = 2,515,976 GPU-h") in out.stdout, out.stdout
    # no Kinetics lists here: the expected figure from Kinetics-400's published size, flagged as assumed
    assert "# expected (assumed: Kinetics-400, about 240k training and 20k validation videos (240,000 training, " \
           "20,000 validation videos; the lists could not be read: " in out.stdout, out.stdout
    assert "#SBATCH --job-name=pas-r2plus1d18-k400-i1-b2" in out.stdout and "#SBATCH --qos=normal" in out.stdout
    assert "#SBATCH --array=0-4" in out.stdout  # the first hypothesis array, not B's plain job
    assert not (tmp_path / "runs").exists()  # nothing written, nothing submitted


@pytest.mark.parametrize(("message", "permanent"), [
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified", True),
    ("sbatch: error: invalid partition specified: nosuch", True),
    ("sbatch: error: Batch job submission failed: Invalid qos specification", True),
    ("sbatch: error: Batch job submission failed: Requested node configuration is not available", True),
    ("sbatch: error: Batch job submission failed: Job violates accounting/QOS policy (job submit limit, user's "
     "size and/or time limits)", True),
    ("sbatch: error: Batch job submission failed: Socket timed out on send/recv operation", False),
    ("sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", False),
    ("sbatch: error: Slurm temporarily unable to accept job, sleeping and retrying", False),
    ("sbatch: error: Batch job submission failed: Resource temporarily unavailable", False),
    ("`sbatch` did not answer within 120 s", False),
], ids=lambda v: str(v)[:40] if isinstance(v, str) else None)
def test_an_sbatch_error_is_permanent_only_when_the_request_is_wrong(message: str, permanent: bool) -> None:
    from pas_orchestrator.executors.slurm import is_permanent

    assert is_permanent(message) is permanent


@pytest.mark.parametrize(("state", "phase"), [
    ("PENDING", "queued"), ("CONFIGURING", "queued"), ("RUNNING", "running"), ("COMPLETING", "running"),
    ("REQUEUED", "requeued"), ("COMPLETED", "succeeded"), ("CANCELLED", "interrupted"), ("FAILED", "failed"),
    ("NODE_FAIL", "failed"), ("OUT_OF_MEMORY", "failed"), ("TIMEOUT", "failed"), ("UNKNOWN", "unknown"),
    ("BURST_BUFFER", "unknown"),
])
def test_slurm_words_stay_in_the_executor(state: str, phase: str) -> None:
    """Every SLURM state becomes one of pas's phases; a state pas does not know is kept as a label, never guessed."""
    from pas_orchestrator.executors.slurm import to_outcome

    out = to_outcome(JobStatus(state, "why", node="n1", history=("NODE_FAIL on n2",)))
    assert out.phase.value == phase
    if state != "UNKNOWN":
        assert out.label == state and out.requeues == 1 + (state == "REQUEUED")
        assert out.requeue_why == "previous run NODE_FAIL on n2"

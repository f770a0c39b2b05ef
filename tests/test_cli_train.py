"""``pas train`` end to end as a subprocess: base network, a distilled + fine-tuned hypothesis, errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from tinyjob import pas, tiny_job

JOB = tiny_job("cli")



def test_base_then_hypotheses(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    early = pas(tmp_path, "train", "--job", "job.yaml", "--ops", "f")
    assert early.returncode == 1 and "runs/cli/manual/base/model.pt does not exist" in early.stderr
    assert "pas train --job job.yaml --base" in early.stderr
    base = pas(tmp_path, "train", "--job", "job.yaml", "--base", "--json")
    assert base.returncode == 0, base.stderr
    res = json.loads(base.stdout)
    assert res["hypothesis"] == "base" and res["epochs"] == 1 and res["eval_videos"] == 4
    assert (tmp_path / "data/synth/dataset.yaml").is_file()  # generated on first use
    f = pas(tmp_path, "train", "--job", "job.yaml", "--ops", "f", "--epochs", "2")
    assert f.returncode == 0, f.stderr
    header, _rule, row = f.stdout.strip().splitlines()
    assert header.split()[:3] == ["hypothesis", "top-1", "%"] and row.split()[0] == "f"
    assert "yes" in row.split() and "runs/cli/manual/f" in row  # fine-tuned from the base network
    result = json.loads((tmp_path / "runs/cli/manual/f/result.json").read_text())
    assert result["epochs"] == 2 and result["finetuned_from_parent"] is True
    assert result["gflops_per_view"] < res["gflops_per_view"]
    cf = pas(tmp_path, "train", "--job", "job.yaml", "--ops", "c,f", "--json")
    assert cf.returncode == 0, cf.stderr
    assert "no trained parent" in cf.stderr and json.loads(cf.stdout)["finetuned_from_parent"] is False
    scratch = pas(tmp_path, "train", "--job", "job.yaml", "--ops", "f", "--scratch", "--json")
    assert scratch.returncode == 0, scratch.stderr
    assert json.loads(scratch.stdout)["finetuned_from_parent"] is False
    assert (tmp_path / "runs/cli/manual/f-scratch/result.json").is_file()


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    assert pas(tmp_path, "train", "--job", "job.yaml").returncode == 2  # neither --ops nor --base
    bad_op = pas(tmp_path, "train", "--job", "job.yaml", "--ops", "c,q")
    assert bad_op.returncode == 2 and "unknown operator 'q'" in bad_op.stderr
    missing = pas(tmp_path, "train", "--job", "nope.yaml", "--base")
    assert missing.returncode == 1 and "nope.yaml: search definition not found" in missing.stderr
    bad = pas(tmp_path, "train", "--job", "job.yaml", "--base", "--nproc", "0")
    assert bad.returncode == 1 and "--nproc must be >= 1" in bad.stderr


def test_an_all_unreadable_dataset_ends_with_one_line_from_dataloader_workers(tmp_path: Path) -> None:
    from tinyjob import failing_job

    job = failing_job(tmp_path, "allbad")
    job["recipe"]["num_workers"] = 2
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    res = pas(tmp_path, "train", "--job", "job.yaml", "--base")
    assert res.returncode == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("pas train: error")]
    assert len(errors) == 1 and "all 4 videos are unreadable" in errors[0], res.stderr
    assert "Traceback" not in res.stderr and "DataLoader worker" not in res.stderr
    warned = [line.split("skipping unreadable video ")[1].split(":")[0] for line in res.stderr.splitlines()
              if "skipping unreadable video" in line]
    assert len(warned) == len(set(warned)) == 4  # each file once, across both workers

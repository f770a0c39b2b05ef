"""Training-step benchmark: clips/s of a knowledge-distillation step (frozen teacher forward + student
forward/backward) vs a plain cross-entropy step, on synthetic tensors (no data loading).

CPU: the tiny presets (student = the base after `f`, teacher = the base), batch 16.
GPU (when CUDA is present): full R(2+1)D-18 KD step (student after `c`), fp32 eager vs
AMP (bf16, fp16 on V100) + channels_last_3d + cudnn.benchmark, batch 24, with MFU against the device's peak.
"""

from __future__ import annotations

import sys
import time

import torch

from pas_models.flops import count_cost
from pas_models.nets import build_model
from pas_models.presets import preset
from pas_models.reductions import apply_op
from pas_models.train.loss import distillation_loss


def step_rate(teacher_spec, student_spec, batch: int, device: str, kd: bool, steps: int,
              amp: torch.dtype | None = None, channels_last: bool = False) -> float:
    torch.manual_seed(0)
    student = build_model(student_spec).to(device).train()
    teacher = build_model(teacher_spec).to(device).train() if kd else None
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    student = student.to(memory_format=fmt)
    if teacher is not None:
        teacher = teacher.to(memory_format=fmt)
        for p in teacher.parameters():
            p.requires_grad_(False)
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9)
    xs = torch.randn(batch, *student_spec.input_shape(train=True), device=device).to(memory_format=fmt)
    xt = torch.randn(batch, *teacher_spec.input_shape(train=True), device=device).to(memory_format=fmt)
    y = torch.randint(0, student_spec.num_classes, (batch,), device=device)

    def one() -> None:
        with torch.autocast(device_type=device.split(":")[0], dtype=amp or torch.float32, enabled=amp is not None):
            t_logits = None
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(xt)
            loss = distillation_loss(student(xs), y, t_logits, 5.0, 500.0).total
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        one()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t)


# dense fp16/bf16 tensor-core peaks (TFLOPS) of the SXM parts
PEAK_TFLOPS = {"V100": 125.0, "A100": 312.0, "H100": 989.0, "H200": 989.0, "GH200": 989.0}


def peak_tflops(device_name: str) -> float:
    """PAS_PEAK_TFLOPS if set, else the table's entry for the device name, else 0 (MFU not printed)."""
    import os

    if "PAS_PEAK_TFLOPS" in os.environ:
        return float(os.environ["PAS_PEAK_TFLOPS"])
    return next((v for k, v in PEAK_TFLOPS.items() if k in device_name), 0.0)


def main() -> int:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"{'device':6s} {'model':34s} {'step':24s} {'clips/s':>9s} {'MFU':>6s}")
    for name in ("r2plus1d_tiny", "slowfast_tiny"):
        teacher = preset(name, 8)
        student = apply_op(teacher, "f")
        for kd in (False, True):
            rate = step_rate(teacher, student, 16, "cpu", kd, steps=20)
            label = "KD (teacher + student)" if kd else "plain (student only)"
            print(f"{'cpu':6s} {student.label:34s} {label:24s} {rate:9.1f} {'-':>6s}")
    if torch.cuda.is_available():
        teacher = preset("r2plus1d_18")
        student = apply_op(teacher, "c")
        # training flops per clip: student fwd + bwd (3x) + teacher fwd; multiply-adds x 2 = flops
        flops_per_clip = 2e9 * (3 * count_cost(student).gflops + count_cost(teacher).gflops)
        peak = peak_tflops(torch.cuda.get_device_name()) * 1e12
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16  # V100: fp16
        torch.backends.cudnn.benchmark = False
        fp32 = step_rate(teacher, student, 24, "cuda", True, steps=10)
        torch.backends.cudnn.benchmark = True
        fast = step_rate(teacher, student, 24, "cuda", True, steps=10, amp=amp, channels_last=True)
        amp_label = "bf16" if amp == torch.bfloat16 else "fp16"
        print(f"(device {torch.cuda.get_device_name()}, MFU against {peak / 1e12:g} dense {amp_label} TFLOPS)")
        for label, rate in (("KD fp32 eager", fp32), (f"KD {amp_label}+cl3d+cudnn.bench", fast)):
            mfu = f"{100 * rate * flops_per_clip / peak:5.1f}%" if peak else "  n/a"
            print(f"{'cuda':6s} {student.label:34s} {label:24s} {rate:9.1f} {mfu:>6s}")
        if not peak:
            print("(unknown device: set PAS_PEAK_TFLOPS to its dense half-precision peak to print MFU)")
    else:
        print("(no CUDA device: GPU rows skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

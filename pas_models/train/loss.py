"""The PAS training objective (paper Sec. 3.3, Eqs. 4-7).

    L_S = L_CE(p, y) + alpha * t^2 * L_KL,   L_KL = sum_k z^_k (log z^_k - log z_k)

with z^ = softmax(teacher logits / t), z = softmax(student logits / t), the same
temperature t on both sides (paper: t = 5, alpha = 500). alpha = 0 (or no
teacher) is plain cross-entropy.

``kl_reduction`` says how L_KL is averaged:

- "mean" (default): over batch *and* classes, i.e. Eq. 5 divided by the number
  of classes K: PyTorch's ``KLDivLoss()`` default, which the paper's alpha = 500
  only makes sense with (effective weight 500 / 400 = 1.25 on Kinetics-400;
  with Eq. 5 summed over classes, alpha t^2 = 12,500 swamps the cross-entropy
  and training diverges);
- "batchmean": over the batch only, Eq. 5 exactly as printed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pas_models.train.task import KL_REDUCTIONS


@dataclass(frozen=True)
class LossParts:
    """total = ce + alpha * t^2 * kl (kl is 0 without a teacher); tensors, total has a graph."""

    total: torch.Tensor
    ce: torch.Tensor
    kl: torch.Tensor


def distillation_loss(student_logits: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None,
                      temperature: float, alpha: float, kl_reduction: str = "mean") -> LossParts:
    """Eq. 7 on a batch: cross-entropy to the labels plus the weighted, tempered KL to the teacher."""
    student_logits = _at_least_fp32(student_logits)
    ce = F.cross_entropy(student_logits, labels)
    if teacher_logits is None or alpha == 0:
        return LossParts(ce, ce.detach(), torch.zeros((), device=ce.device))
    t = temperature
    log_student = F.log_softmax(student_logits / t, dim=1)
    log_teacher = F.log_softmax(_at_least_fp32(teacher_logits.detach()) / t, dim=1)
    if kl_reduction not in KL_REDUCTIONS:
        raise ValueError(f"kl_reduction must be one of {', '.join(KL_REDUCTIONS)}, got {kl_reduction!r}")
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    if kl_reduction == "mean":
        kl = kl / student_logits.shape[1]
    return LossParts(ce + alpha * t * t * kl, ce.detach(), kl.detach())


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """AMP logits (fp16/bf16) are upcast: alpha * t^2 = 12,500 amplifies rounding in the KL term."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x

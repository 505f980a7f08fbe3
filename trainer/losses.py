"""Loss functions of EPicker (paper Eqs. 2-10; numbers in docs METHOD.md).

    L_OD    = L_k + 1.0 * L_off + 0.1 * L_size
    L_total = L_OD + 0.1 * L_distill + 0.01 * L_reg      (continual learning only)

All normalisations by N use the number of positive (centre) cells of the batch, at least 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ALPHA = 2.0  # focal loss exponent on the prediction
BETA = 4.0  # focal loss exponent on (1 - Gaussian target)
TAU1 = 0.7  # sparse annotation: unlabelled pixels predicted above tau1 become positives (pseudo-labels)
TAU2 = 0.5  # sparse annotation: unlabelled pixels count as negatives only when predicted below tau2
OFFSET_WEIGHT = 1.0
SIZE_WEIGHT = 0.1
DISTILL_WEIGHT = 0.1
REG_WEIGHT = 0.01
PROB_EPS = 1e-4  # predictions are clamped to [eps, 1 - eps] before the logarithms (as CenterNet)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, *, sparse: bool = False,
               tau1: float = TAU1, tau2: float = TAU2) -> torch.Tensor:
    """Pixel-wise focal loss L_k on heatmap LOGITS against Gaussian targets (same shape).

    Plain (paper Eq. 3): positives are cells with Y = 1, weighted (1 - p)^alpha * log(p); every
    other cell is a negative weighted (1 - Y)^beta * p^alpha * log(1 - p). Sum / N, N = positives.

    Sparse (``sparse=True``, paper Eq. 10): a cell is positive when Y = 1 OR p > tau1 (pseudo-label);
    otherwise it is a negative only when p < tau2 and ignored when tau2 <= p <= tau1. The paper
    writes the negative case as "Y = 0"; we read it as "not a labelled centre" (Y < 1), which is
    the same on background cells and keeps the paper's own (1 - Y)^beta factor meaningful around
    labelled centres. N counts labelled and pseudo-labelled positives.
    """
    logits = logits.float()
    target = target.float()
    p = torch.sigmoid(logits).clamp(PROB_EPS, 1.0 - PROB_EPS)
    positive = positive_cells(logits, target, sparse=sparse, tau1=tau1)
    if sparse:
        with torch.no_grad():
            negative = ~positive & (p < tau2)
    else:
        negative = ~positive
    pos_term = torch.log(p) * (1.0 - p) ** ALPHA
    neg_term = torch.log(1.0 - p) * p ** ALPHA * (1.0 - target) ** BETA
    n = positive.sum().clamp(min=1).float()
    return -(pos_term[positive].sum() + neg_term[negative].sum()) / n


def positive_cells(logits: torch.Tensor, target: torch.Tensor, *, sparse: bool = False,
                   tau1: float = TAU1) -> torch.Tensor:
    """Cells counted as positives by ``focal_loss`` (bool, no gradient): labelled centres (Y = 1),
    and with ``sparse`` also pseudo-labels (p > tau1). Their number is the loss's N."""
    with torch.no_grad():
        labelled = target.float().eq(1.0)
        if not sparse:
            return labelled
        p = torch.sigmoid(logits.float()).clamp(PROB_EPS, 1.0 - PROB_EPS)
        return labelled | (p > tau1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 at centre cells: sum over cells with mask = 1 and both channels of |pred - target|, / N.

    ``pred``, ``target`` [B, 2, h, w]; ``mask`` [B, 1, h, w]; N = number of centre cells (>= 1).
    Used for L_off (paper Eq. 4) and L_size (Eq. 5).
    """
    m = mask.float()
    n = m.sum().clamp(min=1.0)
    return (torch.abs(pred.float() - target.float()) * m).sum() / n


def distillation_loss(student_features: torch.Tensor, teacher_features: torch.Tensor,
                      student_heatmap: torch.Tensor, teacher_heatmap: torch.Tensor,
                      student_offset: torch.Tensor, teacher_offset: torch.Tensor) -> torch.Tensor:
    """L_distill (paper Eq. 8): mean squared difference of neck features + heatmap + offset.

    Each term is averaged over its own element count (M_f, M_y, M_o). Heatmaps are compared as
    probabilities (sigmoid of the logits), as the paper's Y-hat; teachers are detached.
    """
    feat = F.mse_loss(student_features.float(), teacher_features.detach().float())
    heat = F.mse_loss(torch.sigmoid(student_heatmap.float()), torch.sigmoid(teacher_heatmap.detach().float()))
    off = F.mse_loss(student_offset.float(), teacher_offset.detach().float())
    return feat + heat + off


def parameter_regularisation(student: torch.nn.Module, teacher_params: dict[str, torch.Tensor]) -> torch.Tensor:
    """L_reg (paper Eq. 9): sum over trainable parameters of the squared difference to the old model."""
    total = None
    for name, param in student.named_parameters():
        if not param.requires_grad or name not in teacher_params:
            continue
        term = ((param.float() - teacher_params[name].float()) ** 2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


@dataclass
class LossTerms:
    """The loss terms of one step (tensors), and their weighted total."""

    heatmap: torch.Tensor
    offset: torch.Tensor
    size: torch.Tensor | None = None
    distill: torch.Tensor | None = None
    reg: torch.Tensor | None = None

    @property
    def total(self) -> torch.Tensor:
        """L_OD [+ 0.1 L_distill + 0.01 L_reg]."""
        loss = self.heatmap + OFFSET_WEIGHT * self.offset
        if self.size is not None:
            loss = loss + SIZE_WEIGHT * self.size
        if self.distill is not None:
            loss = loss + DISTILL_WEIGHT * self.distill
        if self.reg is not None:
            loss = loss + REG_WEIGHT * self.reg
        return loss

    def as_floats(self) -> dict[str, float]:
        """Terms present in this step as plain floats (for progress bars and logs)."""
        out = {"loss": float(self.total.detach())}
        for name in ("heatmap", "offset", "size", "distill", "reg"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value.detach())
        return out


def detection_loss(outputs: tuple[torch.Tensor, ...], heatmap: torch.Tensor, offset: torch.Tensor,
                   size: torch.Tensor | None, mask: torch.Tensor, *, sparse: bool = False) -> LossTerms:
    """L_OD terms for network ``outputs`` (heatmap logits, offset[, size]) against batch targets."""
    terms = LossTerms(heatmap=focal_loss(outputs[0], heatmap, sparse=sparse),
                      offset=masked_l1(outputs[1], offset, mask))
    if len(outputs) > 2 and size is not None:
        terms.size = masked_l1(outputs[2], size, mask)
    return terms

"""Best low-rank approximations of a weight change, and how many ranks to keep.

The change is given either as a product ``A @ B`` (a LoRA, or several side by side) or as
a full matrix (fine-tuned minus base). For a product, the SVD is taken of the small core
``R_A @ R_B^T`` after a QR decomposition of each factor, which gives exactly the SVD of
``A @ B`` at the cost of the ranks, not of the layer (an SDXL 3x3 conv is 1280 x 11520).
Truncating the SVD to r values is the best rank-r approximation in the Frobenius norm
(Eckart-Young); the retention reported is ||kept|| / ||all|| in that norm.

Dynamic ranks (sd-scripts' resize_lora.py --dynamic_method / --dynamic_param):
- sv_ratio P: keep singular values larger than the largest divided by P;
- sv_cumulative P: keep the fewest values whose sum reaches the fraction P of the total;
- sv_fro P: keep the fewest values whose Frobenius norm reaches the fraction P of it.
The rank asked for (--new_rank) is then the most a module may keep.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

DYNAMIC_METHODS = ("sv_ratio", "sv_fro", "sv_cumulative")


@dataclass
class Svd:
    """U @ diag(S) @ Vh of a change (U: out x k, S: k, Vh: k x n), k = the ranks there are."""

    u: Tensor
    s: Tensor
    vh: Tensor

    def retention(self, rank: int) -> float:
        """Frobenius norm kept by the first `rank` values, as a fraction (1.0 for a zero change)."""
        total = float(self.s.pow(2).sum())
        return 1.0 if total == 0 else (float(self.s[:rank].pow(2).sum()) / total) ** 0.5

    def factors(self, rank: int) -> tuple[Tensor, Tensor]:
        """(A, B), out x rank and rank x n, with A @ B the best rank-`rank` approximation.

        The singular values are split evenly (sqrt on each side), which keeps both
        factors in the range fp16 stores well. Missing ranks are zero columns.
        """
        root = self.s[:rank].clamp(min=0).sqrt()
        a = self.u[:, :rank] * root
        b = root[:, None] * self.vh[:rank]
        if a.shape[1] < rank:  # fewer ranks than asked for: pad with zeros
            a = torch.cat([a, a.new_zeros(a.shape[0], rank - a.shape[1])], dim=1)
            b = torch.cat([b, b.new_zeros(rank - b.shape[0], b.shape[1])], dim=0)
        return a, b


def svd_of_product(a: Tensor, b: Tensor) -> Svd:
    """The SVD of ``a @ b`` (out x r times r x n) through the QR of each factor."""
    a, b = a.float(), b.float()
    qa, ra = torch.linalg.qr(a)  # a = qa ra, qa: out x k
    qb, rb = torch.linalg.qr(b.T)  # b = rb^T qb^T
    u, s, vh = torch.linalg.svd(ra @ rb.T, full_matrices=False)
    return Svd(qa @ u, s, vh @ qb.T)


def svd_of_matrix(delta: Tensor) -> Svd:
    """The SVD of a full change, flattened to out x (in*kh*kw)."""
    u, s, vh = torch.linalg.svd(delta.float().reshape(delta.shape[0], -1), full_matrices=False)
    return Svd(u, s, vh)


def dynamic_rank(s: Tensor, method: str | None, param: float | None, max_rank: int) -> int:
    """How many singular values to keep (1 .. max_rank); `method` None keeps max_rank."""
    n = int(s.numel())
    if method is None or n == 0 or float(s[0]) == 0:
        return max(1, min(max_rank, n))
    if method == "sv_ratio":
        keep = int((s > s[0] / param).sum())
    elif method == "sv_cumulative":
        fraction = torch.cumsum(s, 0) / s.sum()
        keep = int(torch.searchsorted(fraction, torch.tensor(float(param)))) + 1
    elif method == "sv_fro":
        fraction = torch.cumsum(s.pow(2), 0) / s.pow(2).sum()
        keep = int(torch.searchsorted(fraction, torch.tensor(float(param) ** 2))) + 1
    else:
        raise ValueError(f"unknown dynamic method {method!r}; use one of {', '.join(DYNAMIC_METHODS)}")
    return max(1, min(keep, max_rank, n))


def clamp_quantile(a: Tensor, b: Tensor, quantile: float) -> tuple[Tensor, Tensor]:
    """Clip each factor's entries at the given quantile of its own magnitudes (sd-scripts'
    --clamp_quantile: a few extreme values would otherwise dominate an fp16 file). Each
    factor has its own limit, since up and down hold values of different sizes."""
    if quantile >= 1.0:
        return a, b
    return _clip(a, quantile), _clip(b, quantile)


def _clip(x: Tensor, quantile: float) -> Tensor:
    values = x.flatten().abs()
    k = max(1, min(values.numel(), int(round(quantile * values.numel()))))
    high = float(torch.kthvalue(values, k).values)
    return x.clamp(-high, high)

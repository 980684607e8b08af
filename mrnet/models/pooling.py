"""Pooling per-slice features into one vector per exam: max (the paper's), mean, or gated attention.

Every pool takes several exams' slices concatenated, (sum s, C), with the slice count of
each exam, and pools each exam over its own slices only, so a batch of exams gives the
same numbers as one exam at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ..errors import MRNetError

ATTENTION_HIDDEN = 128  # Ilse et al. use 128 hidden units for their MIL benchmarks


class SlicePool(nn.Module):
    """Base: (sum s, C) and counts -> (k, C); `weights` -> each slice's share of its exam's vector."""

    def pool(self, per_slice: torch.Tensor) -> torch.Tensor:  # (s, C) -> (C,)
        raise NotImplementedError

    def forward(self, per_slice: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        return torch.stack([self.pool(chunk) for chunk in per_slice.split(list(counts))])  # (k, C)

    def weights(self, per_slice: torch.Tensor) -> torch.Tensor | None:
        """(s, C) -> (s,) weights that sum to 1, for pools that weigh slices; None otherwise."""
        return None


class MaxPool(SlicePool):
    """Bien et al. 2018: per feature, the slice where it is strongest."""

    def pool(self, per_slice: torch.Tensor) -> torch.Tensor:
        return per_slice.amax(dim=0)


class MeanPool(SlicePool):
    """Every slice counts equally: a finding on few slices is diluted, noise on one slice too."""

    def pool(self, per_slice: torch.Tensor) -> torch.Tensor:
        return per_slice.mean(dim=0)

    def weights(self, per_slice: torch.Tensor) -> torch.Tensor:
        return torch.full(per_slice.shape[:1], 1.0 / per_slice.shape[0], device=per_slice.device)


class GatedAttentionPool(SlicePool):
    """Gated attention MIL pooling (Ilse, Tomczak & Welling, ICML 2018), slices as the instances.

    a_i = softmax_i(w . (tanh(V h_i) * sigmoid(U h_i))), pooled = sum_i a_i h_i. The weights
    a_i say which slices decided; the gate lets the score of a slice turn off features that
    tanh alone would treat linearly.
    """

    def __init__(self, features: int, hidden: int = ATTENTION_HIDDEN):
        super().__init__()
        self.attention_v = nn.Linear(features, hidden)
        self.attention_u = nn.Linear(features, hidden)
        self.attention_w = nn.Linear(hidden, 1)

    def scores(self, per_slice: torch.Tensor) -> torch.Tensor:  # (n, C) -> (n,)
        gated = torch.tanh(self.attention_v(per_slice)) * torch.sigmoid(self.attention_u(per_slice))  # (n, hidden)
        return self.attention_w(gated).squeeze(1)

    def weights(self, per_slice: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.scores(per_slice).float(), dim=0).to(per_slice.dtype)  # (s,)

    def pool(self, per_slice: torch.Tensor) -> torch.Tensor:
        return self.weights(per_slice) @ per_slice  # (s,) @ (s, C) -> (C,)

    def forward(self, per_slice: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        # The scoring layers run once over all exams' slices; only the softmax is per exam.
        scores = self.scores(per_slice).float()  # (sum s,)
        pooled = [
            torch.softmax(chunk_scores, dim=0).to(chunk.dtype) @ chunk
            for chunk, chunk_scores in zip(per_slice.split(list(counts)), scores.split(list(counts)), strict=True)
        ]
        return torch.stack(pooled)  # (k, C)


# Keyed by mrnet.names.POOL_NAMES: each builds its pool for C features.
POOLS: dict[str, Callable[[int], SlicePool]] = {
    "max": lambda features: MaxPool(),
    "mean": lambda features: MeanPool(),
    "attention": GatedAttentionPool,
}


def make_pool(name: str, features: int) -> SlicePool:
    if name in POOLS:
        return POOLS[name](features)
    raise MRNetError(f"unknown slice pool {name!r}; choose one of {', '.join(POOLS)}")

"""The MRNet model: AlexNet features per slice, average pool, max over slices, one logit.

Pure: tensors in, logits out; no files, no loss, no devices chosen here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .alexnet import FEATURES, alexnet_features


@dataclass
class ModelArgs:
    """What rebuilds an MRNet; stored inside each checkpoint as plain types."""

    features: int = FEATURES


class MRNet(nn.Module):
    """Bien et al. 2018: a slice-wise AlexNet whose per-slice features are max-pooled."""

    def __init__(self, args: ModelArgs | None = None):
        super().__init__()
        self.args = args or ModelArgs()
        self.features = alexnet_features()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(self.args.features, 1)

    def feature_maps(self, slices: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) -> (n, 256, h, w): the last conv layer's ReLU output, before AlexNet's final max pool.

        C is 3 (the grey slice repeated, as ImageNet models take it) or 1 (the grey slice
        itself). With one channel the first convolution uses its kernels summed over the
        three colour channels: conv(w, [x, x, x]) = conv(w_r + w_g + w_b, x), so the result
        is the same, and so is every weight's gradient (the sum passes each colour kernel
        the gradient it would get from its own copy of x), at a third of that layer's work
        and without building a 3-channel copy of every slice.
        """
        first = self.features[0]
        if slices.shape[1] == 1:
            x = F.conv2d(slices, first.weight.sum(dim=1, keepdim=True), first.bias, first.stride, first.padding)
        else:
            x = first(slices)
        for layer in list(self.features)[1:-1]:
            x = layer(x)
        return x

    def slice_features(self, slices: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W), C = 1 or 3 -> (n, 256): one pooled feature vector per slice."""
        return self.pool(self.features[-1](self.feature_maps(slices))).flatten(1)

    def forward(self, slices: torch.Tensor, counts: Sequence[int] | None = None) -> torch.Tensor:
        """One exam (s, C, H, W) -> logit (1,); or, with `counts`, several exams -> (len(counts),).

        Several exams arrive as their slices concatenated, (sum(counts), C, H, W). Each exam
        keeps its own max over its own slices, so the result equals one call per exam while
        the convolutions run as one large batch. One entry point (rather than two methods)
        lets DistributedDataParallel see every training forward pass.
        """
        per_slice = self.slice_features(slices)  # (sum s, 256)
        if counts is None:
            return self.classifier(per_slice.amax(dim=0))  # (1,)
        pooled = torch.stack([chunk.amax(dim=0) for chunk in per_slice.split(list(counts))])  # (k, 256)
        return self.classifier(pooled).squeeze(1)  # (k,)

    def forward_exams(self, slices: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """Several exams' slices concatenated -> logits (len(counts),); see forward()."""
        return self(slices, counts)

    def model_args(self) -> dict:
        return asdict(self.args)

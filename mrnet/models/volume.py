"""The 3-D option: a series resampled to a fixed depth and classified as one volume (torchvision's r3d_18).

Slices are not independent samples here: the network convolves across them, so a finding
that spans neighbouring slices is seen as one structure. Same interface as MRNet
(slices concatenated over exams, with their counts), so training, scoring and stacking
need no other path. Pure: tensors in, logits out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import backbone, fold_first_conv
from .mrnet import FrozenBatchNormMixin, ModelArgs, at_least_fp32, fp32_head


def resample_depth(series: torch.Tensor, depth: int) -> torch.Tensor:
    """One series (s, C, H, W) -> a volume (C, depth, H, W), linear along the slice axis only."""
    volume = series.transpose(0, 1)[None]  # (1, C, s, H, W)
    if volume.shape[2] == depth:
        return volume[0]
    size = (depth, *volume.shape[-2:])
    return F.interpolate(volume.float(), size=size, mode="trilinear", align_corners=True).to(series.dtype)[0]


def bf16_weight_grad_is_wrong(conv: nn.Conv3d, x: torch.Tensor) -> bool:
    """Whether training would take this convolution's weight gradient from oneDNN's bf16 kernel over a depth of 2.

    On the CPU (torch 2.14.1) a convolution with a kernel deeper than 1 and stride 1 along the
    slices, over a depth of exactly 2, gets a weight gradient of inf, NaN or plain wrong values
    (uninitialised memory, so it varies run to run); its forward pass and input gradient, and
    every other depth, match fp32 to bf16's precision. Any --depth from 2 to 16 has such a stage.
    """
    return (
        x.dim() == 5
        and x.shape[2] == 2
        and conv.kernel_size[0] > 1
        and conv.stride[0] == 1
        and x.device.type == "cpu"
        and torch.is_grad_enabled()
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )


# The mixin is only ever combined with a Conv3d class (guarded_class); say so to the type checker.
if TYPE_CHECKING:
    _Conv3dBase = nn.Conv3d
else:
    _Conv3dBase = object


class Fp32AtDepthTwo(_Conv3dBase):
    """Mixed into a Conv3d: computes in fp32 where bf16 would give it a wrong weight gradient (see above)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bf16_weight_grad_is_wrong(self, x):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return super().forward(x.float()).to(torch.bfloat16)


_GUARDED: dict[type, type] = {}


def guarded_class(conv_class: type) -> type:
    """The Conv3d class (torchvision's own subclasses and the folded first one included) with the fallback."""
    if conv_class not in _GUARDED:
        _GUARDED[conv_class] = type(f"Fp32AtDepthTwo{conv_class.__name__}", (Fp32AtDepthTwo, conv_class), {})
    return _GUARDED[conv_class]


def guard_depth_two(extractor: nn.Module) -> nn.Module:
    """Every 3-D convolution gets the fp32 fallback; classes are swapped so the state dict stays as it is."""
    for module in extractor.modules():
        if isinstance(module, nn.Conv3d) and not isinstance(module, Fp32AtDepthTwo):
            module.__class__ = guarded_class(type(module))
    return extractor


class VolumeNet(FrozenBatchNormMixin, nn.Module):
    """3-D backbone over the whole series -> global average pool -> linear head."""

    def __init__(self, args: ModelArgs | None = None):
        super().__init__()
        self.args = args or ModelArgs(backbone="r3d_18")
        spec = backbone(self.args.backbone)
        self.features = guard_depth_two(fold_first_conv(spec.build()))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.classifier = nn.Linear(spec.features, self.args.outputs)

    def volumes(self, slices: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """(sum s, C, H, W) -> (k, C, depth, H, W), each exam resampled on its own."""
        return torch.stack([resample_depth(chunk, self.args.depth) for chunk in slices.split(list(counts))])

    def feature_maps(self, volumes: torch.Tensor) -> torch.Tensor:
        """(k, C, depth, H, W) -> (k, F, d, h, w): the last block's output, read by the CAMs."""
        return self.features(volumes)

    def forward(self, slices: torch.Tensor, counts: Sequence[int] | None = None) -> torch.Tensor:
        """One exam (s, C, H, W) -> (1,) or (1, outputs); with `counts`, several -> (k,) or (k, outputs)."""
        volumes = self.volumes(slices, [slices.shape[0]] if counts is None else counts)
        pooled = self.pool(self.feature_maps(volumes)).flatten(1)  # (k, F)
        with fp32_head(pooled):
            logits = self.classifier(at_least_fp32(pooled))  # (k, outputs)
        return logits.squeeze(1) if self.args.outputs == 1 else logits

    def forward_exams(self, slices: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        return self(slices, counts)

    def model_args(self) -> dict:
        return asdict(self.args)

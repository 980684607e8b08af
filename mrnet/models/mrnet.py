"""The MRNet model: a backbone per slice, average pool, a pool over slices, a linear head.

With the defaults (AlexNet, max over slices, one output) this is Bien et al. 2018. Pure:
tensors in, logits out; no files, no loss, no devices chosen here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..names import BN_NAMES
from .backbones import BACKBONES, backbone, fold_first_conv
from .pooling import POOLS, make_pool

BN_MODES = BN_NAMES  # the BatchNorm modes a model takes
MAX_DEPTH = 256  # slices a 3-D backbone resamples a series to; far above any knee series


@dataclass
class ModelArgs:
    """What rebuilds a model; stored inside each checkpoint as plain types.

    Checkpoints written before these fields existed hold {"features": 256} only: they read
    as the defaults, the paper's AlexNet with max pooling and one output.
    """

    backbone: str = "alexnet"
    pool: str = "max"  # over slices: max (the paper's), mean, attention; the 3-D backbone ignores it
    outputs: int = 1  # logits: 1 per single-task model, 3 for one multi-task model per plane
    depth: int = 32  # 3-D backbone: slices resampled to this depth
    bn: str = "train"  # BatchNorm statistics while training: "train" (batch) or "frozen" (running)

    @classmethod
    def from_dict(cls, saved: dict[str, Any] | None) -> ModelArgs:
        """The args a checkpoint holds, every field checked: a tampered file is refused, not half-built."""
        if saved is not None and not isinstance(saved, dict):
            raise CheckpointError(f"model_args is a {type(saved).__name__}, not a mapping of the model's options")
        known = {f.name for f in fields(cls)}
        args = cls(**{k: v for k, v in (saved or {}).items() if k in known})
        problems = args.problems()
        if problems:
            raise CheckpointError("model_args: " + "; ".join(problems))
        return args

    def problems(self) -> list[str]:
        """What is wrong with these args, each naming the field; empty when a model can be built from them."""
        allowed: dict[str, tuple[Any, ...]] = {
            "backbone": tuple(BACKBONES),
            "pool": tuple(POOLS),
            "bn": BN_MODES,
            "outputs": (1, 3),
        }
        problems = [
            f"{name} {getattr(self, name)!r} is not one of {', '.join(map(str, choices))}"
            for name, choices in allowed.items()
            if not isinstance(getattr(self, name), str | int) or getattr(self, name) not in choices
        ]
        if type(self.depth) is not int or not 2 <= self.depth <= MAX_DEPTH:
            problems.append(f"depth {self.depth!r} is not a whole number from 2 to {MAX_DEPTH}")
        return problems


class FrozenBatchNormMixin:
    """BatchNorm layers stay in eval mode while the rest trains (args.bn == "frozen").

    One exam's slices are a small, highly correlated batch; frozen statistics keep the
    pretrained (or first-learned) normalisation instead of re-estimating it per exam.
    """

    args: ModelArgs

    def train(self, mode: bool = True):
        super().train(mode)  # type: ignore[misc]
        if mode and self.args.bn == "frozen":
            for module in self.modules():  # type: ignore[attr-defined]
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self


def fp32_head(features: torch.Tensor) -> torch.autocast:
    """Autocast off for the pool over slices and the linear head: in bf16 the logits near ±1.5 are 0.008
    apart, so exams tie on the tuning split and the CPU's and GPU's numbers differ; the head costs nothing."""
    return torch.autocast(features.device.type, enabled=False)


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """bf16 or fp16 features up to fp32 for the head; fp32 and fp64 (the gradient checks) as they are."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


class MRNet(FrozenBatchNormMixin, nn.Module):
    """Slice-wise features from a 2-D backbone, pooled over slices, then one logit per output."""

    def __init__(self, args: ModelArgs | None = None):
        super().__init__()
        self.args = args or ModelArgs()
        spec = backbone(self.args.backbone)
        self.maps_before_last = spec.maps_before_last
        self.features = fold_first_conv(spec.build())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.slice_pool = make_pool(self.args.pool, spec.features)
        self.classifier = nn.Linear(spec.features, self.args.outputs)

    def feature_maps(self, slices: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W), C = 1 or 3 -> (n, F, h, w): the maps that the CAMs read.

        C is 3 (the grey slice repeated, as ImageNet models take it) or 1 (the grey slice
        itself, through the folded first convolution: same result, a third of its work).
        For AlexNet these are the last conv layer's ReLU output, before its final max pool.
        """
        if self.maps_before_last:
            for layer in list(self.features.children())[:-1]:
                slices = layer(slices)
            return slices
        return self.features(slices)

    def features_from_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """(n, F, h, w) -> (n, F): what the pool over slices sees per slice."""
        if self.maps_before_last:
            maps = list(self.features.children())[-1](maps)
        return self.pool(maps).flatten(1)

    def slice_features(self, slices: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W), C = 1 or 3 -> (n, F): one pooled feature vector per slice."""
        return self.features_from_maps(self.feature_maps(slices))

    def slice_weights(self, slices: torch.Tensor) -> torch.Tensor | None:
        """One exam (s, C, H, W) -> (s,) attention (or mean) weights; None for max pooling."""
        return self.slice_pool.weights(self.slice_features(slices))

    def forward(self, slices: torch.Tensor, counts: Sequence[int] | None = None) -> torch.Tensor:
        """One exam (s, C, H, W) -> logits (1,) or (1, outputs); with `counts`, several -> (k,) or (k, outputs).

        Several exams arrive as their slices concatenated, (sum(counts), C, H, W). Each exam
        is pooled over its own slices, so the result equals one call per exam while the
        convolutions run as one large batch. One entry point (rather than two methods) lets
        DistributedDataParallel see every training forward pass.
        """
        per_slice = self.slice_features(slices)  # (sum s, F)
        with fp32_head(per_slice):
            per_slice = at_least_fp32(per_slice)
            if counts is None:
                logits = self.classifier(self.slice_pool.pool(per_slice))  # (outputs,)
                return logits if self.args.outputs == 1 else logits[None]  # (1,) or (1, outputs)
            logits = self.classifier(self.slice_pool(per_slice, counts))  # (k, outputs)
        return logits.squeeze(1) if self.args.outputs == 1 else logits

    def forward_exams(self, slices: torch.Tensor, counts: Sequence[int]) -> torch.Tensor:
        """Several exams' slices concatenated -> logits (len(counts),); see forward()."""
        return self(slices, counts)

    def model_args(self) -> dict:
        return asdict(self.args)

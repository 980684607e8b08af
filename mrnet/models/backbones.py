"""The per-slice (and per-volume) feature extractors MRNet can use, behind one registry.

Each entry names a torchvision model, the part of it that MRNet keeps (a feature extractor
(n, 3, H, W) -> (n, C, h, w), or (n, 3, D, H, W) -> (n, C, d, h, w) for the 3-D one), its
feature size C, its pretrained weights, and where its keys sit in torchvision's state dict.
torchvision's model builders are imported inside the builders: importing them costs about
1.5 s, which `--help` and AlexNet inference should not pay.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MRNetError
from .alexnet import FEATURES as ALEXNET_FEATURES
from .alexnet import alexnet_features, init_from_scratch


@dataclass(frozen=True)
class Backbone:
    """One registry entry: how to build it, its feature size, its weights, where its keys are."""

    name: str
    title: str  # as people write it, for messages
    features: int  # C of the extractor's output
    build: Callable[[], nn.Module]  # the extractor with torchvision's default (random) init
    weights: str  # torchvision weights enum member, e.g. "ResNet18_Weights.IMAGENET1K_V1"
    prefix: str  # where the extractor's keys sit in the full torchvision state dict
    volumetric: bool = False  # input (n, 3, D, H, W) instead of (n, 3, H, W)
    # AlexNet's last layer is a max pool; CAMs read the maps before it (twice the resolution).
    maps_before_last: bool = False
    # torchvision leaves AlexNet's convolutions at PyTorch's default init; see alexnet.init_from_scratch.
    scratch_init: Callable[[nn.Module], None] | None = None


def _resnet(depth: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from torchvision.models import resnet18, resnet34

        net = {18: resnet18, 34: resnet34}[depth](weights=None)
        # Named as in torchvision (conv1, bn1, layer1, ...) so its state dict loads without renaming.
        keep = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        return nn.Sequential(OrderedDict((name, getattr(net, name)) for name in keep))

    return build


def _efficientnet_b0() -> nn.Module:
    from torchvision.models import efficientnet_b0

    return efficientnet_b0(weights=None).features


def _mobilenet_v3_small() -> nn.Module:
    from torchvision.models import mobilenet_v3_small

    return mobilenet_v3_small(weights=None).features


def _r3d_18() -> nn.Module:
    from torchvision.models.video import r3d_18

    net = r3d_18(weights=None)
    keep = ("stem", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((name, getattr(net, name)) for name in keep))


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in (
        Backbone(
            "alexnet",
            "AlexNet",
            ALEXNET_FEATURES,
            alexnet_features,
            "AlexNet_Weights.IMAGENET1K_V1",
            "features.",
            maps_before_last=True,
            scratch_init=init_from_scratch,
        ),
        Backbone("resnet18", "ResNet-18", 512, _resnet(18), "ResNet18_Weights.IMAGENET1K_V1", ""),
        Backbone("resnet34", "ResNet-34", 512, _resnet(34), "ResNet34_Weights.IMAGENET1K_V1", ""),
        Backbone(
            "efficientnet_b0",
            "EfficientNet-B0",
            1280,
            _efficientnet_b0,
            "EfficientNet_B0_Weights.IMAGENET1K_V1",
            "features.",
        ),
        Backbone(
            "mobilenet_v3_small",
            "MobileNetV3-Small",
            576,
            _mobilenet_v3_small,
            "MobileNet_V3_Small_Weights.IMAGENET1K_V1",
            "features.",
        ),
        Backbone("r3d_18", "R3D-18", 512, _r3d_18, "R3D_18_Weights.KINETICS400_V1", "", volumetric=True),
    )
}


def backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise MRNetError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


# ----------------------------------------------------------------------------- one grey channel


class FoldedConv2d(nn.Conv2d):
    """A first convolution that also takes one grey channel: its kernels summed over the colour channels.

    conv(w, [x, x, x]) = conv(w_r + w_g + w_b, x): the same output, and the same gradient for
    every weight (the sum hands each colour kernel the gradient its own copy of x would give),
    at a third of the layer's work and without a 3-channel copy of every slice.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.in_channels == 3:
            if is_channels_last(self.weight):
                x = one_channel_last(x)
            return F.conv2d(x, self.weight.sum(dim=1, keepdim=True), self.bias, self.stride, self.padding)
        return super().forward(x)


def is_channels_last(weight: torch.Tensor) -> bool:
    """Whether a model was converted to channels_last: its 4-D weights are in that layout and not NCHW."""
    return weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()


def one_channel_last(x: torch.Tensor) -> torch.Tensor:
    """(n, 1, H, W) -> the same numbers with channels_last strides (H·W, 1, W, 1): a view, no copy.

    With one channel both layouts hold the same bytes, and PyTorch reads such a tensor as NCHW
    from its strides; the convolution (cuDNN's and oneDNN's pick their layout from the input's
    or the weight's strides) would then run NCHW and the next layer convert its output.
    The channel's stride only names the layout: with one channel it never moves the address.
    """
    return x.as_strided(x.shape, (x.stride(0), 1, x.stride(2), x.stride(3)))


class FoldedConv3d(nn.Conv3d):
    """FoldedConv2d for volumes: (n, 1, D, H, W) uses the kernels summed over colour channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.in_channels == 3:
            return F.conv3d(x, self.weight.sum(dim=1, keepdim=True), self.bias, self.stride, self.padding)
        return super().forward(x)


def fold_first_conv(extractor: nn.Module) -> nn.Module:
    """Let the extractor's first layer, if a convolution, take one grey channel (see FoldedConv2d).

    The class of the existing layer is swapped rather than the layer replaced, so its
    parameters, their names in the state dict and any device or memory format stay as they are.
    """
    first = next(m for m in extractor.modules() if not list(m.children()))
    if type(first) is nn.Conv2d and first.groups == 1 and first.dilation == (1, 1):
        first.__class__ = FoldedConv2d
    elif type(first) is nn.Conv3d and first.groups == 1 and first.dilation == (1, 1, 1):
        first.__class__ = FoldedConv3d
    return extractor


# ----------------------------------------------------------------------------- weights

BN_COUNTER = "num_batches_tracked"


def _weights_enum(spec: Backbone):
    from torchvision.models import get_weight  # only real training needs torchvision's weight registry

    return get_weight(spec.weights)


def _extractor_keys(state: dict, spec: Backbone, expected: set[str]) -> dict:
    prefix = spec.prefix
    picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in picked.items() if k in expected}


def weights_from_torchvision(spec: Backbone, expected: set[str]) -> dict:
    """The pretrained extractor weights from torch's hub cache or a download; a way out when that fails."""
    weights = _weights_enum(spec)
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # network errors come in many types (URLError, OSError, SSL, ...)
        file_name = weights.url.rsplit("/", 1)[-1]
        hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
        kind = "Kinetics-400" if spec.volumetric else "ImageNet"
        raise MRNetError(
            f"could not get the {kind} {spec.title} weights ({type(err).__name__}: {err}).\n"
            f"  Either train from scratch with --no-pretrained,\n"
            f"  or copy {file_name} (from {weights.url}) to {hub_dir / file_name},\n"
            f"  or pass it with --weights PATH."
        ) from None
    return _extractor_keys(state, spec, expected)


def weights_from_file(spec: Backbone, path: Path, expected: set[str]) -> dict:
    """A torchvision state dict file of the backbone (the whole classifier's; the head is dropped)."""
    if not path.is_file():
        raise MRNetError(f"--weights {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise MRNetError(f"--weights {path}: not a readable torch state dict ({err})") from None
    if not isinstance(state, dict):
        raise MRNetError(f"--weights {path}: expected a torchvision {spec.title} state dict")
    picked = _extractor_keys(state, spec, expected)
    if {k for k in expected if not k.endswith(BN_COUNTER)} - set(picked):
        example = spec.prefix + sorted(expected)[0]
        raise MRNetError(
            f"--weights {path}: not a torchvision {spec.title} state dict (expected keys like {example!r})"
        )
    return picked


def _load(extractor: nn.Module, state: dict) -> None:
    """Strict loading, except BatchNorm's batch counters, which older torchvision weight files lack."""
    full = extractor.state_dict()
    full.update(state)
    extractor.load_state_dict(full)


def init_extractor(extractor: nn.Module, spec: Backbone, pretrained: bool, weights_path: str | None) -> None:
    """Load a weights file, or the pretrained weights, or leave (or make) the from-scratch init."""
    expected = set(extractor.state_dict())
    if weights_path:
        _load(extractor, weights_from_file(spec, Path(weights_path), expected))
    elif pretrained:
        _load(extractor, weights_from_torchvision(spec, expected))
    elif spec.scratch_init is not None:
        spec.scratch_init(extractor)

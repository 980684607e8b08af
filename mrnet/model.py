"""The MRNet model: AlexNet features per slice, average pool, max over slices, one logit.

Pure: tensors in, logits out; no files, no loss, no devices chosen here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MRNetError

FEATURES = 256  # channels of AlexNet's last conv layer


@dataclass
class ModelArgs:
    """What rebuilds an MRNet; stored inside each checkpoint as plain types."""

    features: int = FEATURES


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet `features` block, layer for layer (same indices, so its state dict loads as is).

    Built here rather than taken from torchvision.models.alexnet(): that would import all of
    torchvision's model zoo (about 1.5 s, a third of a one-exam prediction) and initialise a
    58M-parameter classifier that MRNet throws away.
    """
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


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


def build_model(pretrained: bool = True, weights_path: str | None = None) -> MRNet:
    """A fresh MRNet, its AlexNet features from ImageNet unless asked to start from scratch.

    `weights_path` (a torchvision AlexNet state dict file) serves machines with no internet.
    """
    model = MRNet()
    if weights_path:
        model.features.load_state_dict(_features_from_file(Path(weights_path)))
    elif pretrained:
        model.features.load_state_dict(_features_from_torchvision())
    else:
        init_from_scratch(model.features)
    return model


def model_for_inference(state: dict[str, torch.Tensor], device: torch.device) -> MRNet:
    """An MRNet holding a checkpoint's weights, in eval mode and channels_last, built without a random init.

    A normal construction draws random weights only for the checkpoint to replace them; on
    the meta device nothing is drawn, and the checkpoint's tensors are assigned in place of
    the empty ones. channels_last as in training (README, 'Speed').
    """
    with torch.device("meta"):
        model = MRNet()
    model.load_state_dict(state, assign=True)
    return model.to(device, memory_format=torch.channels_last).eval()


def init_from_scratch(features: nn.Sequential) -> None:
    """He initialisation for the ReLU convolutions of an AlexNet trained without ImageNet weights.

    torchvision leaves AlexNet's convolutions at PyTorch's default init, which shrinks the
    signal layer by layer: five layers deep the per-slice features are nearly constant and a
    from-scratch run sits for epochs at the constant-prediction loss before it starts to learn.
    """
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(layer.bias)


def _features_only(state: dict) -> dict:
    prefix = "features."
    features = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return features


def _features_from_torchvision() -> dict:
    from torchvision.models import AlexNet_Weights  # only real training needs torchvision's weight registry

    weights = AlexNet_Weights.IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as err:  # network errors come in many types (URLError, OSError, SSL, ...)
        file_name = weights.url.rsplit("/", 1)[-1]
        hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
        raise MRNetError(
            f"could not get the ImageNet AlexNet weights ({type(err).__name__}: {err}).\n"
            f"  Either train from scratch with --no-pretrained,\n"
            f"  or copy {file_name} (from {weights.url}) to {hub_dir / file_name},\n"
            f"  or pass it with --weights PATH."
        ) from None
    return _features_only(state)


def _features_from_file(path: Path) -> dict:
    if not path.is_file():
        raise MRNetError(f"--weights {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise MRNetError(f"--weights {path}: not a readable torch state dict ({err})") from None
    if not isinstance(state, dict):
        raise MRNetError(f"--weights {path}: expected a torchvision AlexNet state dict")
    features = _features_only(state)
    expected = set(alexnet_features().state_dict())
    if set(features) != expected:
        raise MRNetError(
            f"--weights {path}: not a torchvision AlexNet state dict (expected keys like 'features.0.weight')"
        )
    return features

"""AlexNet's convolutional feature extractor: built here, initialised from ImageNet or from scratch.

Pretrained weights come through torchvision's weights API (downloaded once into torch's hub
cache), or from a local file for machines without internet.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import MRNetError

FEATURES = 256  # channels of AlexNet's last conv layer


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet `features` block, layer for layer (same indices, so its state dict loads as is).

    Built here rather than taken from torchvision.models.alexnet(): that would import all of
    torchvision's model zoo (about 1.5 s, a third of a one-exam prediction) and initialise a
    58M-parameter classifier that MRNet throws away.
    """
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


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
    features = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return features


def features_from_torchvision() -> dict:
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


def features_from_file(path: Path) -> dict:
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

"""Making an MRNet to train (ImageNet, a weights file, or from scratch) or to run a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import CheckpointError
from .alexnet import features_from_file, features_from_torchvision, init_from_scratch
from .mrnet import MRNet


def build_model(pretrained: bool = True, weights_path: str | None = None) -> MRNet:
    """A fresh MRNet, its AlexNet features from ImageNet unless asked to start from scratch.

    `weights_path` (a torchvision AlexNet state dict file) serves machines with no internet.
    """
    model = MRNet()
    if weights_path:
        model.features.load_state_dict(features_from_file(Path(weights_path)))
    elif pretrained:
        model.features.load_state_dict(features_from_torchvision())
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
    try:
        model.load_state_dict(state, assign=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise CheckpointError(f"the checkpoint does not hold MRNet weights ({str(err).splitlines()[0]})") from None
    return model.to(device, memory_format=torch.channels_last).eval()

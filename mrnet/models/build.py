"""Making a model to train (pretrained, a weights file, or from scratch) or to run a checkpoint."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError
from .backbones import backbone, init_extractor
from .mrnet import ModelArgs, MRNet
from .volume import VolumeNet

PlaneModel = MRNet | VolumeNet  # one plane's network: slices concatenated over exams -> logits


def new_model(args: ModelArgs) -> PlaneModel:
    """The network that `args` describe, with torchvision's default init (no weights loaded)."""
    return VolumeNet(args) if backbone(args.backbone).volumetric else MRNet(args)


def build_model(pretrained: bool = True, weights_path: str | None = None, args: ModelArgs | None = None) -> PlaneModel:
    """A fresh model, its backbone pretrained unless asked to start from scratch.

    `weights_path` (a torchvision state dict file of the backbone) serves machines with no
    internet. Pooling and head layers always start from the seeded random init.
    """
    args = args or ModelArgs()
    model = new_model(args)
    init_extractor(model.features, backbone(args.backbone), pretrained, weights_path)
    return model


def memory_format(model: nn.Module) -> torch.memory_format:
    """channels_last for 2-D backbones (measured faster, docs/speed.md); its 3-D form for volumes."""
    return torch.channels_last_3d if isinstance(model, VolumeNet) else torch.channels_last


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or infinity (a diverged or corrupted run)."""
    return [
        name
        for name, value in state.items()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def model_for_inference(
    state: dict[str, torch.Tensor], device: torch.device, args: dict | ModelArgs | None = None
) -> PlaneModel:
    """A model holding a checkpoint's weights, rebuilt from its `model_args`, in eval mode, built without a random init.

    A normal construction draws random weights only for the checkpoint to replace them; on
    the meta device nothing is drawn, and the checkpoint's tensors are assigned in place of
    the empty ones. Checkpoints without model_args (or with only the old {"features": 256})
    are the paper's AlexNet with max pooling and one output.
    """
    args = args if isinstance(args, ModelArgs) else ModelArgs.from_dict(args)
    bad = non_finite_tensors(state)
    if bad:
        raise CheckpointError(
            f"the checkpoint's weights hold NaN or infinite values ({len(bad)} tensor(s), first: {bad[0]}); "
            "it cannot give a probability that means anything"
        )
    with torch.device("meta"):
        model = new_model(args)
    try:
        model.load_state_dict(state, assign=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise CheckpointError(f"the checkpoint does not hold MRNet weights ({str(err).splitlines()[0]})") from None
    model = model.to(device)
    return model.to(memory_format=memory_format(model)).eval()

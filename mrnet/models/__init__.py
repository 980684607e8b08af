"""Models: MRNet (a backbone per slice, a pool over slices, a linear head), the 3-D option, what builds them."""

from .backbones import BACKBONES
from .build import PlaneModel, build_model, memory_format, model_for_inference
from .mrnet import BN_MODES, ModelArgs, MRNet
from .pooling import POOLS
from .volume import VolumeNet

__all__ = [
    "BACKBONES",
    "BN_MODES",
    "POOLS",
    "MRNet",
    "ModelArgs",
    "PlaneModel",
    "VolumeNet",
    "build_model",
    "memory_format",
    "model_for_inference",
]

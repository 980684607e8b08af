"""Models: MRNet (per-slice AlexNet features, max over slices, one logit) and what builds it."""

from .build import build_model, model_for_inference
from .mrnet import ModelArgs, MRNet

__all__ = ["MRNet", "ModelArgs", "build_model", "model_for_inference"]

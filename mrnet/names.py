"""The names the options choose from, as plain strings: the command line and configs check against them without
importing torch, and the model registries in mrnet.models are keyed by them (a test holds the two equal)."""

from __future__ import annotations

ALL_TASKS = "all"  # --task all: one network per plane with a logit for each task
# Per-slice networks (mrnet.models.backbones); the 3-D ones read the whole volume at once.
BACKBONE_NAMES = ("alexnet", "resnet18", "resnet34", "efficientnet_b0", "mobilenet_v3_small", "r3d_18")
VOLUME_BACKBONES = ("r3d_18",)
POOL_NAMES = ("max", "mean", "attention")  # over slices (mrnet.models.pooling)
BN_NAMES = ("train", "frozen")  # BatchNorm statistics while training: per step, or the running ones kept
# --task all: how the three tasks' losses add up, and which epoch each task's view keeps.
TASK_WEIGHTS = ("balanced", "sum")
VIEW_EPOCHS = ("task", "mean")

"""MRNet: knee-MRI diagnosis with per-plane AlexNet models and a stacked ensemble (Bien et al. 2018)."""

__version__ = "0.1.0"

TASKS = ("abnormal", "acl", "meniscus")
PLANES = ("axial", "coronal", "sagittal")
SPLITS = ("train", "valid")

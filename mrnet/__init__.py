"""MRNet: knee-MRI diagnosis with per-plane AlexNet models and a stacked ensemble (Bien et al. 2018)."""

__version__ = "0.2.0"

TASKS = ("abnormal", "acl", "meniscus")
PLANES = ("axial", "coronal", "sagittal")
SPLITS = ("train", "valid")


def plane_order(planes) -> tuple[str, ...]:
    """The planes asked for, in the usual order (axial, coronal, sagittal); a dataset may hold fewer than three."""
    return tuple(p for p in PLANES if p in set(planes))


AMP_MODES = ("auto", "off", "bf16", "fp16")  # autocast choices; see device.resolve_amp
ENGINES = ("torch", "onnxruntime")  # what runs the plane models in predict; see export.onnx_export
FIT_ON = ("tune", "train", "valid-cv")  # what the stacker learns from; see ensemble.stacker.fit_stacker
LOGIT = "_logit"  # a score table's column <plane>_logit: the model's float64 logit beside its probability <plane>
SELECT_ON = ("tune", "valid")  # the split that picks the best epoch and drives the scheduler; see data.splits
PLATEAU_ON = ("loss", "auc")  # what ReduceLROnPlateau watches on that split
# What runs saved before these options existed did: no tuning split, the valid split's AUC everywhere.
# Read where a saved config lacks a field (resuming, evaluating an old run).
LEGACY_RECIPE = {
    "tune_fraction": 0.0,
    "split_seed": 0,
    "select_on": "valid",
    "plateau_on": "auc",
    "task_weights": "sum",
    "view_epochs": "mean",
}

"""Plane models as ONNX: exported from best.pt, checked against torch, scored with onnxruntime.

The graph takes one exam, the preprocessed float32 slices (s, 1, H, W) with the slice count
s as a dynamic axis and the single grey channel the folded first convolution takes, and
gives its logits (outputs,). Preprocessing stays outside (data/transforms.preprocess, also
described in a bundle's preprocessing.json), so both engines see the very same input.
The file records the sha256 of the weights it was exported from; predict refuses an ONNX
file whose best.pt has changed since.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import PLANES, layout
from ..checkpoint import load_checkpoint
from ..data.transforms import preprocess
from ..errors import MRNetError
from ..files import atomic_write
from ..inference import TaskModels, checked_image_size, load_plane_model
from .weights import WEIGHTS_KEY, weights_sha256

ONNX_FILE = "model.onnx"
OPSET = 17
TOLERANCE = 1e-4  # max |logit difference| against torch in fp32
CHECK_SLICES = (2, 5, 11)  # exams of different lengths: the slice axis must really be dynamic
META_WEIGHTS = "mrnet.weights_sha256"


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise MRNetError("install onnxruntime to use ONNX models (pip install 'mrnet[export]')") from None
    return onnxruntime


class OneExam(nn.Module):
    """A plane model over one exam's slices (s, 1, H, W) -> logits (outputs,): the graph ONNX holds."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        return self.model(slices).reshape(-1)


@dataclass(frozen=True)
class OnnxCheck:
    path: Path
    slices: tuple[int, ...]
    max_difference: float  # max |onnxruntime logit - torch logit| over the check exams


def onnx_path(models_dir: str | Path, task: str, plane: str) -> Path:
    return layout.best_checkpoint(models_dir, task, plane).with_name(ONNX_FILE)


def export_plane(models_dir: str | Path, task: str, plane: str) -> OnnxCheck:
    """Write <task>-<plane>/model.onnx from its best.pt and check it against torch; refused beyond TOLERANCE."""
    import onnx

    best = layout.best_checkpoint(models_dir, task, plane)
    ckpt = load_checkpoint(best, task, plane)
    model, size = load_plane_model(models_dir, task, plane, torch.device("cpu"))
    model = model.float().to(memory_format=torch.contiguous_format)
    wrapper = OneExam(model).eval()
    example = torch.randn(3, 1, size, size)
    path = onnx_path(models_dir, task, plane)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():  # the folded-conv branch on the channel count is fixed at 1, as intended
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # torch's notice about its TorchScript-based exporter
            torch.onnx.export(
                wrapper,
                (example,),
                str(tmp),
                input_names=["slices"],
                output_names=["logits"],
                dynamic_axes={"slices": {0: "slices"}},
                opset_version=OPSET,
                dynamo=False,
            )
        graph = onnx.load(str(tmp))
        onnx.checker.check_model(graph)
        for key, value in {
            META_WEIGHTS: weights_sha256(ckpt[WEIGHTS_KEY]),
            "mrnet.task": task,
            "mrnet.plane": plane,
            "mrnet.image_size": str(size),
            "mrnet.input": "preprocessed slices float32 (s, 1, H, W): min-max to 0..255, (x - 58.09) / 49.73",
        }.items():
            graph.metadata_props.add(key=key, value=value)
        onnx.save(graph, str(tmp))

    atomic_write(path, write)
    difference = compare_with_torch(model, path, size)
    if not difference <= TOLERANCE:
        path.unlink()
        raise MRNetError(f"{path}: onnxruntime's logits differ from torch's by {difference:.2e} (> {TOLERANCE})")
    return OnnxCheck(path, CHECK_SLICES, difference)


def compare_with_torch(model: nn.Module, path: Path, size: int, seed: int = 0) -> float:
    """Max |logit difference| between torch and onnxruntime on random exams of CHECK_SLICES slices."""
    session = session_for(path)
    rng = np.random.default_rng(seed)
    worst = 0.0
    for count in CHECK_SLICES:
        series = torch.from_numpy(rng.integers(0, 256, (count, size, size), dtype=np.uint8))
        slices = preprocess(series)
        with torch.inference_mode():
            expected = model(slices).reshape(-1).double().numpy()
        found = session.run(None, {"slices": slices.numpy()})[0].astype(np.float64)
        worst = max(worst, float(np.abs(found - expected).max()))
    return worst


def session_for(path: Path):
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_weights_sha256(path: Path) -> str | None:
    """The weights hash an ONNX file records (read from its metadata, not run)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False)
    return next((p.value for p in graph.metadata_props if p.key == META_WEIGHTS), None)


class OnnxPlaneModel(nn.Module):
    """An ONNX plane model called like the torch one: slices of several exams -> logits (k,) or (k, outputs)."""

    def __init__(self, path: Path, outputs: int):
        super().__init__()
        self.session = session_for(path)
        self.outputs = outputs

    def forward(self, slices: torch.Tensor, counts: Sequence[int] | None = None) -> torch.Tensor:
        chunks = slices.float().cpu().split(list(counts)) if counts is not None else [slices.float().cpu()]
        logits = [self.session.run(None, {"slices": chunk.numpy()})[0] for chunk in chunks]
        stacked = torch.from_numpy(np.stack(logits))  # (k, outputs)
        return stacked.squeeze(1) if self.outputs == 1 else stacked


def load_onnx_task_models(
    models_dir: str | Path,
    task: str,
    device: torch.device,
    image_size: int | None = None,
    planes: Sequence[str] = PLANES,
) -> TaskModels:
    """A task's ONNX plane models (the three, or `planes`), each checked to come from the weights in its best.pt."""
    models, sizes = {}, {}
    for plane in planes:
        path = onnx_path(models_dir, task, plane)
        best = layout.best_checkpoint(models_dir, task, plane)
        if not path.is_file():
            raise MRNetError(f"{path} not found: export the models first (mrnet export onnx --models-dir ...)")
        ckpt = load_checkpoint(best, task, plane)
        if onnx_weights_sha256(path) != weights_sha256(ckpt[WEIGHTS_KEY]):
            raise MRNetError(f"{path} was exported from other weights than {best} holds now; export it again")
        outputs = int((ckpt.get("model_args") or {}).get("outputs", 1))
        models[plane] = OnnxPlaneModel(path, outputs)
        saved = ckpt.get("image_size")
        sizes[plane] = image_size or checked_image_size(256 if saved is None else saved)
    return TaskModels(task, models, sizes)  # type: ignore[arg-type]

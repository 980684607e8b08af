"""Class activation maps (Bien et al. 2018, Fig. 4): where in which slices a plane model saw its evidence.

The MRNet head is linear after two poolings: per slice, the F feature maps are averaged
to a vector; the vectors are pooled over slices (max, mean or attention); one linear layer
gives the logit. So the classifier weights w (F,) dotted with a slice's feature maps
(F, h, w) give a map whose spatial mean is that slice's contribution before the pool over
slices. A 3-D model gets the same over its volume's maps. Nothing here
trains or changes the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from . import PLANES
from .data.exams import ExamInput
from .data.series import resize_series
from .data.transforms import preprocess
from .device import to_device
from .files import save_figure
from .inference import TaskModels, exam_series, slice_attention
from .models import PlaneModel, VolumeNet

COLORMAP = "inferno"
OVERLAY_ALPHA = 0.45


@torch.inference_mode()
def class_activation_maps(model: PlaneModel, series: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (s, H, W) -> CAMs (s, H, W) float32 and per-slice scores (s,) float64.

    Maps: w . (the backbone's feature maps); for AlexNet taken before its final max pool.
    That pool only keeps local maxima of the same maps, so the evidence is the same while
    the resolution doubles (15x15 instead of 7x7 at 256 px; 3x3 instead of a single pixel
    at 64 px). They are upsampled bilinearly to the slice size.

    Slice scores: the exact share of the logit that flows through each slice, so
    scores + bias = the exam's logit. Max pooling picks, for each feature, one winning
    slice; a slice's score is the sum of w_k * feature_k over the features it wins (a slice
    that wins none scores 0). Ranking slices by this (rather than by the CAM's maximum)
    names the slices that actually drive the prediction. With mean or attention pooling a
    slice's score is its weight a_i times w . h_i (a_i = 1/s for the mean).
    """
    model.eval()
    views = preprocess(to_device(series, device))  # (s, 1, H, W)
    if isinstance(model, VolumeNet):
        return _volume_cams(model, views, series.shape)
    maps = model.feature_maps(views)  # (s, F, h, w)
    per_slice = model.features_from_maps(maps)  # (s, F), exactly what forward() pools
    weights = model.classifier.weight[0]  # (F,)

    cams = torch.einsum("c,schw->shw", weights, maps)  # (s, h, w)
    cams = F.interpolate(cams[:, None], size=series.shape[-2:], mode="bilinear", align_corners=False)[:, 0]

    share = model.slice_pool.weights(per_slice)  # (s,) or None for max pooling
    if share is None:
        best, winner = per_slice.max(dim=0)  # (F,), (F,): the slice each feature's max comes from
        scores = torch.zeros(series.shape[0], dtype=torch.float64, device=per_slice.device)
        scores.index_add_(0, winner, (weights * best).double())
    else:
        scores = share.double() * (per_slice @ weights).double()  # (s,)
    return cams.float().cpu().numpy(), scores.cpu().numpy()


def _volume_cams(model: VolumeNet, views: torch.Tensor, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D model: w . (last block's maps) (d, h, w), resampled to the series' (s, H, W).

    The logit is w . mean(maps) + b, so a slice's score is its share of that mean: the
    resampled map summed over the slice, divided by the number of voxels.
    """
    maps = model.feature_maps(model.volumes(views, [views.shape[0]]))[0]  # (F, d, h, w)
    cam = torch.einsum("c,cdhw->dhw", model.classifier.weight[0], maps)  # (d, h, w)
    cams = F.interpolate(cam[None, None], size=tuple(shape), mode="trilinear", align_corners=False)[0, 0]  # (s, H, W)
    scores = cams.double().sum(dim=(1, 2)) / cams.numel()
    return cams.float().cpu().numpy(), scores.cpu().numpy()


def top_slices(slice_scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k highest-scoring slices, best first (ties keep slice order)."""
    order = np.argsort(-np.asarray(slice_scores), kind="stable")
    return [int(i) for i in order[: max(k, 0)]]


def cam_peak(cam: np.ndarray) -> tuple[int, int]:
    """(row, column) of a single slice's CAM maximum."""
    row, col = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return int(row), int(col)


def normalise_cams(cams: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the whole series, so colours compare across its slices."""
    low, high = float(cams.min()), float(cams.max())
    return (cams - low) / max(high - low, 1e-12)


def overlay_rgb(slice_uint8: np.ndarray, heat: np.ndarray, alpha: float = OVERLAY_ALPHA) -> np.ndarray:
    """A grey slice (H, W) under a heatmap in [0, 1] (H, W) -> RGB uint8 (H, W, 3)."""
    grey = np.repeat(slice_uint8.astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    colour = colormaps[COLORMAP](np.clip(heat, 0.0, 1.0))[..., :3]
    # Stronger evidence shows more colour; weak evidence leaves the anatomy readable.
    weight = alpha * np.clip(heat, 0.0, 1.0)[..., None]
    return np.round(255.0 * ((1 - weight) * grey + weight * colour)).astype(np.uint8)


def save_cam_overlays(
    series: np.ndarray,
    cams: np.ndarray,
    slice_scores: np.ndarray,
    out_dir: str | Path,
    prefix: str,
    top_k: int = 3,
    slice_weights: np.ndarray | None = None,
) -> list[Path]:
    """PNG overlays of the top_k slices by score; returns their paths, best slice first.

    `slice_weights` (attention pooling) adds each slice's attention weight to its title.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    heat = normalise_cams(cams)
    paths = []
    for rank, index in enumerate(top_slices(slice_scores, top_k), start=1):
        path = out_dir / f"{prefix}-top{rank}-slice{index:02d}.png"
        title = f"{prefix}  slice {index}  score {slice_scores[index]:+.3f}"
        if slice_weights is not None:
            title += f"  attention {slice_weights[index]:.2f}"
        _save_overlay_figure(overlay_rgb(series[index], heat[index]), title, path)
        paths.append(path)
    return paths


def _save_overlay_figure(rgb: np.ndarray, title: str, path: Path) -> None:
    # The object API (Figure + Agg canvas) leaves pyplot's global state and backend alone.
    figure = Figure(figsize=(4, 4.3), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 0.92))
    axes.imshow(rgb, interpolation="nearest")
    axes.set_axis_off()
    figure.suptitle(title, fontsize=9)
    save_figure(figure, path)


def save_cam_gif(
    series: np.ndarray,
    cams: np.ndarray,
    slice_scores: np.ndarray,
    path: str | Path,
    frame_ms: int = 150,
) -> Path:
    """An animated GIF through every slice, each frame labelled with its index and score."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    heat = normalise_cams(cams)
    frames = []
    for index in range(series.shape[0]):
        frame = Image.fromarray(overlay_rgb(series[index], heat[index]))
        ImageDraw.Draw(frame).text((2, 2), f"{index} {slice_scores[index]:+.2f}", fill=(255, 255, 255))
        frames.append(frame)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    return path


def lesion_hit_rate(
    cams: Sequence[np.ndarray], slice_scores: Sequence[np.ndarray], masks: Sequence[np.ndarray]
) -> tuple[float, float]:
    """Share of exams whose CAM peak on the top slice falls inside the mask, and the share expected by chance.

    Chance is the mask's area fraction on that slice: a peak placed uniformly at random
    would land inside that often. Used to check that maps point at planted lesions.
    """
    hits, chance = [], []
    for cam, scores, mask in zip(cams, slice_scores, masks, strict=True):
        index = top_slices(scores, 1)[0]
        row, col = cam_peak(cam[index])
        hits.append(bool(mask[index, row, col]))
        chance.append(float(mask[index].mean()))
    return float(np.mean(hits)), float(np.mean(chance))


# ----------------------------------------------------------------------------- predict --cam


@dataclass
class CamOptions:
    """Where heatmaps go, how many top slices per series, and whether to add a GIF."""

    out_dir: Path
    top_k: int = 3
    gif: bool = False


def write_cams(
    cam: CamOptions,
    exams: Sequence[ExamInput],
    task_models: Sequence[TaskModels],
    device: torch.device,
    converted: dict[tuple[Path, str], np.ndarray] | None = None,
) -> list[Path]:
    """Heatmaps of the top slices per exam, task and plane into <cam>/<case>/; a GIF through all slices if asked.
    Returns the files written.

    Each series at the slice size its model was trained on, as it was scored (inference.fit_to_size,
    which has already warned about a resize). Plane by plane, so one plane's series are in memory.
    """
    converted = converted or {}
    written: list[Path] = []
    for plane in [p for p in PLANES if all(p in tm.models for tm in task_models)]:
        raw = [exam_series(e, plane, converted) for e in exams]
        for tm in task_models:
            model, size = tm.models[plane], tm.image_sizes[plane]
            for exam, series in zip(exams, raw, strict=True):
                volume = series if series.shape[-1] == size else resize_series(series, size)
                cams, scores = class_activation_maps(model, volume, device)
                folder = cam.out_dir / exam.case
                weights = slice_attention(model, volume, device)
                prefix = f"{tm.task}-{plane}"
                written += save_cam_overlays(
                    volume, cams, scores, folder, prefix, top_k=cam.top_k, slice_weights=weights
                )
                if cam.gif:
                    written.append(save_cam_gif(volume, cams, scores, folder / f"{prefix}.gif"))
        del raw
    return written

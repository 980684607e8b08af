"""Class activation maps (Bien et al. 2018, Fig. 4): where in which slices a plane model saw its evidence.

The MRNet head is linear after two poolings: per slice, the 256 feature maps are averaged
to a vector; the vectors are max-pooled over slices; one linear layer gives the logit. So
the classifier weights w (256,) dotted with a slice's feature maps (256, h, w) give a map
whose spatial mean is that slice's contribution before the max over slices. Nothing here
trains or changes the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

from .data.transforms import preprocess
from .device import to_device
from .models import MRNet

COLORMAP = "inferno"
OVERLAY_ALPHA = 0.45


@torch.inference_mode()
def class_activation_maps(model: MRNet, series: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (s, H, W) -> CAMs (s, H, W) float32 and per-slice scores (s,) float64.

    Maps: w . (last conv layer's ReLU output), taken before AlexNet's final max pool. That
    pool only keeps local maxima of the same maps, so the evidence is the same while the
    resolution doubles (15x15 instead of 7x7 at 256 px; 3x3 instead of a single pixel at
    64 px). They are upsampled bilinearly to the slice size.

    Slice scores: the exact share of the logit that flows through each slice. The max over
    slices picks, for each of the 256 features, one winning slice; a slice's score is the
    sum of w_k * feature_k over the features it wins, so scores + bias = the exam's logit
    and a slice that wins no feature scores 0. Ranking slices by this (rather than by the
    CAM's maximum) names the slices that actually drive the prediction: a slice can hold a
    bright CAM peak and still lose every feature's max to another slice.
    """
    model.eval()
    views = preprocess(to_device(series, device))  # (s, 1, H, W)
    maps = model.feature_maps(views)  # (s, 256, h, w)
    pooled = model.pool(model.features[-1](maps)).flatten(1)  # (s, 256), exactly what forward() pools
    weights = model.classifier.weight[0]  # (256,)

    cams = torch.einsum("c,schw->shw", weights, maps)  # (s, h, w)
    cams = F.interpolate(cams[:, None], size=series.shape[-2:], mode="bilinear", align_corners=False)[:, 0]

    best, winner = pooled.max(dim=0)  # (256,), (256,): the slice each feature's max comes from
    scores = torch.zeros(series.shape[0], dtype=torch.float64, device=pooled.device)
    scores.index_add_(0, winner, (weights * best).double())
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
) -> list[Path]:
    """PNG overlays of the top_k slices by score; returns their paths, best slice first."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    heat = normalise_cams(cams)
    paths = []
    for rank, index in enumerate(top_slices(slice_scores, top_k), start=1):
        path = out_dir / f"{prefix}-top{rank}-slice{index:02d}.png"
        _save_overlay_figure(
            overlay_rgb(series[index], heat[index]), f"{prefix}  slice {index}  score {slice_scores[index]:+.3f}", path
        )
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
    figure.savefig(path)


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

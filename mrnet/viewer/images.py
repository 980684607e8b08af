"""Pictures for the pages: PNG data URIs of whole series (one sprite per series) and the heatmap colours."""

from __future__ import annotations

import base64
import io

import numpy as np
from matplotlib import colormaps
from PIL import Image

from ..cam import COLORMAP


def png_data_uri(image: np.ndarray) -> str:
    """A uint8 grey image (H, W) as a data: URI; data URIs keep the page one file and its canvas readable."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def sprite(series: np.ndarray) -> str:
    """uint8 (s, N, N) -> one PNG of the slices stacked top to bottom (s*N, N), as a data URI."""
    slices, height, width = series.shape
    return png_data_uri(series.reshape(slices * height, width))


def heat_levels(cams: np.ndarray) -> np.ndarray:
    """CAMs (s, N, N) -> uint8 0..255 over the whole series, so colours compare across its slices (as cam.py does)."""
    low, high = float(cams.min()), float(cams.max())
    scaled = (cams - low) / max(high - low, 1e-12)
    return np.round(255.0 * np.clip(scaled, 0.0, 1.0)).astype(np.uint8)


def shrink(cams: np.ndarray, size: int) -> np.ndarray:
    """CAMs (s, N, N) -> (s, size, size), box-filtered, when N is larger.

    A map carries 15 x 15 cells of information at 256 px: it needs no 256 x 256 pixels on the
    page, which upsamples it again (bilinearly) when drawing.
    """
    if cams.shape[-1] <= size:
        return cams
    return np.stack(
        [np.asarray(Image.fromarray(c.astype(np.float32)).resize((size, size), Image.Resampling.BOX)) for c in cams]
    )


def colormap_table(name: str = COLORMAP) -> list[list[int]]:
    """The heatmap colours, 256 RGB triples: the page colours heat levels with the PNG overlays' colormap."""
    rgb = colormaps[name](np.linspace(0.0, 1.0, 256))[:, :3]
    return np.round(255.0 * rgb).astype(int).tolist()

"""Class activation maps: shapes, the exact slice attribution, the image files, and that maps find a lesion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation

from mrnet.cam import class_activation_maps, lesion_hit_rate, save_cam_gif, save_cam_overlays, top_slices
from mrnet.data.transforms import preprocess
from mrnet.models import MRNet, build_model
from mrnet.synthetic import make_exam
from mrnet.training.engine import train_one_epoch

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def untrained() -> MRNet:
    torch.manual_seed(0)
    return MRNet().eval()


@pytest.fixture(scope="module")
def series() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 64, 64), dtype=np.uint8)


def test_cam_shapes(untrained, series):
    cams, scores = class_activation_maps(untrained, series, CPU)
    assert cams.shape == (5, 64, 64) and cams.dtype == np.float32
    assert scores.shape == (5,)
    assert np.isfinite(cams).all()


def test_slice_scores_add_up_to_the_logit(untrained, series):
    _, scores = class_activation_maps(untrained, series, CPU)
    with torch.inference_mode():
        logit = untrained(preprocess(torch.from_numpy(series))).item()
    assert scores.sum() + untrained.classifier.bias.item() == pytest.approx(logit, abs=1e-5)


def test_top_slices_best_first():
    assert top_slices(np.array([0.1, 0.5, -0.2, 0.5, 0.3]), 3) == [1, 3, 4]
    assert top_slices(np.array([0.1, 0.2]), 5) == [1, 0]


def test_overlays_and_gif_are_written(untrained, series, tmp_path):
    cams, scores = class_activation_maps(untrained, series, CPU)
    paths = save_cam_overlays(series, cams, scores, tmp_path / "cam", "0007-acl-sagittal", top_k=2)
    assert len(paths) == 2
    assert f"slice{top_slices(scores, 1)[0]:02d}" in paths[0].name
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 64
    gif = save_cam_gif(series, cams, scores, tmp_path / "cam" / "series.gif")
    with Image.open(gif) as image:
        assert image.n_frames == len(series)


# ----------------------------------------------------------------------------- localisation

SIZE = 128  # at 64 px every last-layer cell sees the whole slice, so no map could localise anything
LESION_RADIUS = 8
PAIRS = 16


def plant_lesion(series: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc at a random place on a random slice; returns the series and the lesion mask."""
    slice_index = int(rng.integers(len(series)))
    cy, cx = rng.integers(SIZE // 5, SIZE - SIZE // 5, size=2)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    mask = np.zeros(series.shape, dtype=bool)
    mask[slice_index] = (yy - cy) ** 2 + (xx - cx) ** 2 <= LESION_RADIUS**2
    planted = series.copy()
    planted[mask] = 255
    return planted, mask


def sagittal_knee(index: int) -> np.ndarray:
    return make_exam([11, index], (0, 0, 0), size=SIZE, slices=(3, 5))["sagittal"]


@pytest.fixture(scope="module")
def lesion_model() -> MRNet:
    """One epoch on synthetic knees with and without a planted lesion (a fixed-seed quick training).

    Each knee appears twice, with and without the lesion, so the lesion is the only thing
    that tells the classes apart. The lesion sits at a random place: a map that peaked at a
    fixed place (say the centre of the knee) would not pass the test below.
    """
    rng = np.random.default_rng(0)
    series, labels = [], []
    for index in range(PAIRS):
        knee = sagittal_knee(index)
        series += [plant_lesion(knee, rng)[0], knee]
        labels += [1, 0]
    torch.manual_seed(0)
    model = build_model(pretrained=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-4)
    order = torch.randperm(len(series), generator=torch.Generator().manual_seed(0)).tolist()
    train_one_epoch(model, optimizer, series, np.array(labels), order, augment=None, pos_weight=1.0, device=CPU)
    return model.eval()


@pytest.mark.slow
def test_cam_peaks_inside_planted_lesion_more_often_than_chance(lesion_model):
    rng = np.random.default_rng(1)
    cams, scores, masks = [], [], []
    for index in range(100, 112):
        planted, mask = plant_lesion(sagittal_knee(index), rng)
        exam_cams, exam_scores = class_activation_maps(lesion_model, planted, CPU)
        cams.append(exam_cams)
        scores.append(exam_scores)
        # a little margin: the maps are 7x7 at 128 px, so a peak is placed to within a cell
        masks.append(np.stack([binary_dilation(m, iterations=SIZE // 16) for m in mask]))
    hit_rate, chance = lesion_hit_rate(cams, scores, masks)
    assert hit_rate > 4 * chance, f"CAM peak inside the lesion in {hit_rate:.0%} of exams (chance {chance:.1%})"
    # the top-scoring slice is the one holding the lesion
    assert np.mean([m[top_slices(s, 1)[0]].any() for s, m in zip(scores, masks, strict=True)]) >= 0.75

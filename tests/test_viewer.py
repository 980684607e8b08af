"""The exam viewer: page content and HTML validity, predict --html, and the pages in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import html5lib
import numpy as np
import pytest
from PIL import Image

from mrnet import PLANES, TASKS
from mrnet.cli.predict import main
from mrnet.data.dataset import series_path
from mrnet.ensemble.file import PROBABILITY, SavedEnsemble
from mrnet.prediction import operating_points
from mrnet.viewer import browser
from mrnet.viewer.index import IndexRow, render_index
from mrnet.viewer.page import ExamView, PlaneImages, TaskOutcome, page_name, page_names, render_exam_page

needs_chromium = pytest.mark.skipif(
    browser.find_chromium() is None, reason="chromium is not installed (Debian: apt-get install chromium)"
)


def assert_valid_html(text: str) -> None:
    """No parse error under html5lib's strict parser (the WHATWG parsing rules)."""
    html5lib.HTMLParser(strict=True, namespaceHTMLElements=False).parse(text)


def exam_data(text: str) -> dict:
    match = re.search(r'<script type="application/json" id="exam-data">(.*?)</script>', text, re.S)
    return json.loads(match.group(1))


def decode_sprite(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def synthetic_view(slices: int = 4, size: int = 64) -> ExamView:
    rng = np.random.default_rng(0)
    planes = []
    for plane in PLANES:
        series = rng.integers(0, 256, size=(slices, size, size), dtype=np.uint8)
        cams = {t: rng.normal(size=(slices, size, size)).astype(np.float32) for t in TASKS}
        scores = {t: rng.normal(size=slices) for t in TASKS}
        planes.append(PlaneImages(plane, series, cams, scores))
    outcomes = [
        TaskOutcome(
            t,
            {m: 0.2 + 0.2 * i for i, m in enumerate((*PLANES, "ensemble"))},
            dict.fromkeys((*PLANES, "ensemble"), 0.5),
        )
        for t in TASKS
    ]
    return ExamView("knee <1>", planes, outcomes, "0.5 for every model.", notes=["axial: a note & more"])


def test_exam_page_is_valid_html_and_carries_every_plane():
    view = synthetic_view()
    text = render_exam_page(view)
    assert_valid_html(text)
    assert "knee &lt;1&gt;" in text and "a note &amp; more" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text  # no network
    data = exam_data(text)
    assert list(data["planes"]) == list(PLANES) and data["tasks"] == list(TASKS)
    for images in view.planes:
        plane = data["planes"][images.plane]
        assert np.array_equal(decode_sprite(plane["image"]), images.series.reshape(-1, images.series.shape[-1]))
        for task in TASKS:
            assert plane["deciding"][task] == int(np.argmax(images.scores[task]))
            heat = decode_sprite(plane["heat"][task])
            assert heat.min() == 0 and heat.max() == 255  # scaled over the whole series
    assert text.count('<figure class="plane"') == 3
    large = render_exam_page(synthetic_view(slices=2, size=128))
    assert_valid_html(large)
    plane = exam_data(large)["planes"]["axial"]
    assert plane["size"] == 128 and plane["heatSize"] == 64
    assert decode_sprite(plane["heat"]["acl"]).shape == (2 * 64, 64)  # heatmaps are stored at most 64 px
    assert page_name("knee <1>") == "knee__1_.html" and page_name("../x") == "_x.html"
    assert page_names(["a b", "a_b", "c"]) == {"a b": "a_b.html", "a_b": "a_b-2.html", "c": "c.html"}


def test_index_is_valid_html_with_sortable_columns():
    rows = [IndexRow("0001", "0001.html", {"acl": 0.9, "meniscus": float("nan")}, {"acl": 1}, "acl: true positive")]
    text = render_index(rows, ["acl", "meniscus"], "Exams")
    assert_valid_html(text)
    assert 'data-acl="0.9"' in text and "<td>n/a</td>" in text and 'href="0001.html"' in text


def older_ensemble(task: str, threshold: float | None = None) -> SavedEnsemble:
    """A stacker saved before train_meta stored a threshold per model (at most the ensemble's own)."""
    hashes = dict.fromkeys(PLANES, "0" * 64)
    return SavedEnsemble(
        task, PLANES, PROBABILITY, "train", "1.0", (0, 1), (1.0, 1.0, 1.0), 0.0, hashes, threshold=threshold
    )


def test_operating_point_is_labelled_honestly():
    thresholds, note = operating_points({"acl": older_ensemble("acl"), "meniscus": older_ensemble("meniscus", 0.3)})
    assert thresholds["acl"] == {"axial": 0.5, "coronal": 0.5, "sagittal": 0.5, "ensemble": 0.5}
    assert thresholds["meniscus"]["ensemble"] == 0.3
    assert "fixed cut-off" in note and "stored with the ensemble" in note


# ----------------------------------------------------------------------------- predict --html


@pytest.fixture(scope="module")
def viewer(tiny, tmp_path_factory) -> Path:
    """predict --html on two valid exams (as the competition's CSV): their pages and index.html."""
    out = tmp_path_factory.mktemp("viewer")
    cases = sorted(p.stem for p in (tiny.data_dir / "valid" / "axial").glob("*.npy"))[:2]
    listing = out / "paths.csv"
    listing.write_text("".join(f"{series_path(tiny.data_dir, 'valid', p, c)}\n" for c in cases for p in PLANES))
    args = ["--models-dir", str(tiny.models_dir), "--input-csv", str(listing), "--device", "cpu"]
    main([*args, "--out", str(out / "predictions"), "--html", str(out / "html")])
    return out / "html"


@pytest.mark.slow
def test_predict_writes_a_valid_page_per_exam_and_an_index(tiny, viewer):
    pages = sorted(viewer.glob("*.html"))
    assert {p.name for p in pages} == {"index.html", *(f"{c}.html" for c in exam_cases(viewer))}
    assert len(pages) == 3
    for page in pages:
        assert_valid_html(page.read_text())
    data = exam_data((viewer / f"{exam_cases(viewer)[0]}.html").read_text())
    assert set(data["planes"]) == set(PLANES) and data["tasks"] == list(TASKS)
    assert all(len(data["planes"][p]["scores"]["acl"]) == data["planes"][p]["slices"] for p in PLANES)


def exam_cases(viewer: Path) -> list[str]:
    return re.findall(r'<tr data-case="([^"]+)"', (viewer / "index.html").read_text())


def figure_states(dom: str) -> dict[str, dict[str, str]]:
    """data-* attributes of each plane's figure, read from the DOM Chromium dumped."""
    states = {}
    for tag in re.findall(r'<figure class="plane"[^>]*>', dom):
        attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag))
        states[attributes["plane"]] = attributes
    return states


@pytest.mark.slow
@needs_chromium
def test_page_in_chromium_shows_three_planes_and_its_handlers_work(viewer):
    page = viewer / f"{exam_cases(viewer)[0]}.html"
    data = exam_data(page.read_text())
    first = browser.dump_dom(browser.page_url(page, "task=acl"))
    assert 'data-ready="1"' in first and 'data-task="acl"' in first
    states = figure_states(first)
    assert set(states) == set(PLANES)
    for plane in PLANES:  # each plane opens on its deciding slice, overlay on, default window
        assert states[plane]["slice"] == str(data["planes"][plane]["deciding"]["acl"])
        assert states[plane]["overlay"] == "on" and states[plane]["window"] == "128,255"

    # Real events through the page's handlers: keys, wheel, slider, window/level drag, overlay switch.
    events = "slider:axial:0|key:axial:ArrowDown|key:axial:ArrowDown|slider:coronal:1|wheel:coronal:-100"
    events += "|drag:sagittal:40:-20|click:overlay"
    dom = browser.dump_dom(browser.page_url(page, f"task=acl&events={events}"))
    assert 'data-events-replayed="7"' in dom
    states = figure_states(dom)
    assert states["axial"]["slice"] == str(min(2, data["planes"]["axial"]["slices"] - 1))
    assert states["coronal"]["slice"] == "0"
    assert states["sagittal"]["window"] == "108,295"  # level -20 (up), window +40 (right)
    assert all(s["overlay"] == "off" for s in states.values())


def changed_by_third(a: Path, b: Path) -> np.ndarray:
    """How many pixels differ between two screenshots in the left, middle and right third of the page."""
    first, second = (np.asarray(Image.open(p).convert("RGB"), dtype=np.int16) for p in (a, b))
    changed = np.abs(first - second).sum(axis=2) > 0
    return np.array([part.sum() for part in np.array_split(changed, 3, axis=1)])


@pytest.mark.slow
@needs_chromium
def test_screenshots_change_with_the_slice_and_the_overlay(viewer, tmp_path):
    page = viewer / f"{exam_cases(viewer)[0]}.html"
    shots = {
        name: browser.screenshot(browser.page_url(page, state), tmp_path / f"{name}.png", (1200, 900))
        for name, state in {
            "slice0": "task=acl&axial=0&coronal=0&sagittal=0",
            "slice1": "task=acl&axial=1&coronal=0&sagittal=0",
            "plain": "task=acl&axial=0&coronal=0&sagittal=0&overlay=off",
        }.items()
    }
    moved = changed_by_third(shots["slice0"], shots["slice1"])
    assert moved[0] > 100 * 100  # the axial image (left) changed ...
    assert moved[0] > 20 * moved[1:].sum()  # ... and hardly anything else (text rendering may differ by a few pixels)
    switched = changed_by_third(shots["slice0"], shots["plain"])
    assert (switched > 100 * 100).all()  # switching the overlay off changed every plane's image


@pytest.mark.slow
@needs_chromium
def test_index_sorts_by_a_task_in_chromium(viewer):
    cases = exam_cases(viewer)
    text = (viewer / "index.html").read_text()
    acl = {c: float(v) for c, v in re.findall(r'data-case="([^"]+)" data-abnormal="[^"]*" data-acl="([^"]+)"', text)}
    assert set(acl) == set(cases)
    dom = browser.dump_dom(browser.page_url(viewer / "index.html", "sort=acl&order=asc"))
    assert f'data-first="{min(acl, key=acl.get)}"' in dom and 'aria-sort="ascending"' in dom

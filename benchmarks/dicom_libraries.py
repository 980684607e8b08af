"""The project's own DICOM reading against highdicom's volume API and SimpleITK's series reader.

Every reader gets the same files, written by the tests' DICOM writer (tests/dicom_files.py):
shuffled file names and a rescale slope and intercept of its own on every slice, plus one
mess per case. Each output is put in the project's slice order using the reader's own
geometry (its affine), then compared with the series it was written from; the import's
uint8 window is the same for all, so modality values are compared. Then speed on clean
256 x 256 series, install weight, and in-plane resampling (benchmarks.dicom_resampling):

    python -m benchmarks.dicom_libraries [--out docs/measured]

writes dicom-libraries.json and dicom-resampling.json (one-off records, benchmarks.tables).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mrnet.files import write_json

from .dicom_resampling import measure as measure_resampling
from .results import cpu_model_name

SPLIT = "no split: synthetic DICOM series"
Result = tuple[
    str, Any, str
]  # ("volume", (s, H, W) modality values in the project's order, remark) or ("refused", None, why)


# The readers: files of one series in, modality values ordered along the slice normal out.


def read_datasets(files: Sequence[Path]) -> list[Any]:
    import pydicom

    return [pydicom.dcmread(path) for path in files]


def project_reader(files: Sequence[Path], uid: str) -> Result:
    from mrnet.data.dicom import DicomOptions, check_plane, ordered_slices, series_info
    from mrnet.data.dicom_pixels import modality_values, pixels_of

    datasets = read_datasets(files)
    info = series_info(uid, datasets)
    check_plane(info, info.plane.name if info.plane else "axial", DicomOptions())
    ordered, notes = ordered_slices(datasets)
    values = np.stack([modality_values(ds, pixels_of(ds)) for ds in ordered])
    return "volume", values, "note" if notes else ""


def highdicom_reader(files: Sequence[Path], uid: str) -> Result:
    import highdicom

    datasets = read_datasets(files)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volume = highdicom.get_volume_from_series(datasets, dtype=np.float64, apply_voi_transform=False)
    values = volume.array
    if float(np.dot(volume.direction[:, 0], normal_of(datasets[0]))) < 0:
        values = values[::-1]
    return "volume", values, "warning" if caught else ""


def sitk_reader(files: Sequence[Path], uid: str) -> Result:
    """As SimpleITK's examples read a series: GDCM lists the series' files in its order, then one Execute."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    with captured_stderr() as err:
        names = reader.GetGDCMSeriesFileNames(str(files[0].parent), uid)
        reader.SetFileNames(names)
        image = reader.Execute()
    values = sitk.GetArrayFromImage(image).astype(np.float64)  # (z, y, x) = (slices, rows, columns)
    slice_axis = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
    import pydicom

    if float(np.dot(slice_axis, normal_of(pydicom.dcmread(files[0], stop_before_pixels=True)))) < 0:
        values = values[::-1]
    return "volume", values, "warning" if "".join(err).strip() else ""


def normal_of(ds: Any) -> np.ndarray:
    cosines = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    return np.cross(cosines[:3], cosines[3:])


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """What a C++ library writes to file descriptor 2 (not Python's sys.stderr), in the list once the block ends."""
    text: list[str] = []
    with tempfile.TemporaryFile(mode="w+") as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read())


READERS: dict[str, Callable[[Sequence[Path], str], Result]] = {
    "project": project_reader,
    "highdicom": highdicom_reader,
    "SimpleITK": sitk_reader,
}


def run_reader(reader: Callable[[Sequence[Path], str], Result], files: Sequence[Path], uid: str) -> Result:
    try:
        return reader(files, uid)
    except Exception as err:  # each library raises its own types; a refusal is what is measured
        text = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return "refused", None, text[:70]


def judge(expected: np.ndarray | None, result: Result) -> tuple[str, bool]:
    """(cell text, wrong?): exact, refused, or what is wrong with what was returned.

    A result returned where an error was due counts as wrong even with a warning on stderr:
    a program gets the volume, not the warning.
    """
    kind, values, remark = result
    plus = f" + {remark}" if remark else ""
    if kind == "refused":
        return ("refused ✓" if expected is None else "refused") + f" ({values or remark})", False
    if expected is None:
        return f"returned {values.shape[0]} slices, should refuse ✗" + plus, True
    if values.shape != expected.shape:
        return f"wrong shape {values.shape} ✗" + plus, True
    if np.allclose(values, expected, atol=1e-6):
        return "exact" + plus, False
    if np.allclose(values[::-1], expected, atol=1e-6):
        return "slices reversed ✗" + plus, True
    return f"wrong values (max error {np.abs(values - expected).max():.3g}) ✗" + plus, True


# The cases: each a folder holding one series, and what a correct reader returns (None: refuse).


def write_cases(root: Path) -> list[tuple[str, str, Path, str, np.ndarray | None]]:
    from pydicom.uid import generate_uid

    from tests.dicom_files import tilted, write_series

    rng = np.random.default_rng(0)
    volume = rng.integers(0, 256, (12, 64, 64)).astype(np.uint8)
    frame = {"FrameOfReferenceUID": generate_uid()}
    cases = []

    def case(name: str, expect: str, expected: np.ndarray | None, **kwargs: Any) -> Path:
        folder = root / name.replace(" ", "_")[:40]
        uid = write_series(kwargs.pop("volume", volume), folder, kwargs.pop("plane", "axial"), **kwargs)
        cases.append((name, expect, folder, uid, expected))
        return folder

    case("shuffled names, rescale per slice", "exact", volume, headers=frame)
    case("oblique sagittal (15°)", "exact", volume, plane="sagittal", orientation=tilted("sagittal", 15), headers=frame)
    case(
        "a slice missing (gap)",
        "the 11 slices, gap noted",
        np.delete(volume, 5, axis=0),
        skip_slices=(5,),
        headers=frame,
    )
    folder = case("two acquisitions at one position", "refuse", None, headers=frame)
    uid = cases[-1][3]
    write_series(volume[:, ::-1].copy(), folder, "axial", series_uid=uid, headers=frame, prefix="B")
    localizer = generate_uid()
    folder = root / "localizer"
    for plane in ("axial", "coronal", "sagittal"):
        write_series(volume[:3], folder, plane, series_uid=localizer, headers=frame, prefix=plane[:3])
    cases.append(("3-plane localizer (one series)", "refuse", folder, localizer, None))
    folder = case("a file cut short", "refuse", None, headers=frame)
    victim = sorted(folder.iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:-200])
    folder = case("no ImagePositionPatient", "InstanceNumber order, noted", volume, headers=frame)
    strip(folder, "ImagePositionPatient")
    case("no FrameOfReferenceUID (the tests' files)", "exact", volume)
    return cases


def strip(folder: Path, keyword: str) -> None:
    import pydicom

    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        delattr(ds, keyword)
        ds.save_as(path)


def case_rows(root: Path) -> tuple[list[list[object]], dict[str, int]]:
    rows, wrong = [], dict.fromkeys(READERS, 0)
    for name, expect, folder, uid, expected in write_cases(root):
        files = sorted(folder.iterdir())
        cells = []
        for reader_name, reader in READERS.items():
            text, silent = judge(expected, run_reader(reader, files, uid))
            wrong[reader_name] += silent
            cells.append(text)
        rows.append([name, expect, *cells])
    return rows, wrong


def cohort_row(root: Path, n: int) -> list[object]:
    """tests/import_cohorts.py's messy cohort (FrameOfReferenceUID added): every series read, by every reader."""
    import pydicom

    from tests.import_cohorts import write_dicom_cohort

    src, _, studies = write_dicom_cohort(root, n)
    by_uid = {s.uid: s for s in studies.values()}
    series: dict[str, list[Path]] = {}
    headers: dict[str, Any] = {}
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path)
        except Exception:
            continue  # README, DICOMDIR; the file cut short is still read without its pixels
        if len(ds.PixelData) == ds.Rows * ds.Columns * 2:  # the file cut short stays as it is
            ds.FrameOfReferenceUID = pydicom.uid.generate_uid(entropy_srcs=[ds.StudyInstanceUID])
            ds.save_as(path)
        series.setdefault(ds.SeriesInstanceUID, []).append(path)
        headers[ds.SeriesInstanceUID] = ds
    counts = {name: {"exact": 0, "refused ✓": 0, "other": 0} for name in READERS}
    for uid, files in series.items():
        ds = headers[uid]
        study = by_uid[ds.StudyInstanceUID]
        description = str(ds.SeriesDescription)
        plane = description.split()[0].lower()
        if "LOC" in description or (plane == "axial" and "cut short" in study.mess):
            expected = None
        else:
            expected = study.exam[plane][::-1] if "REPEAT" in description else study.exam[plane]
        for name, reader in READERS.items():
            folder_files = [f for f in files if f.parent == files[0].parent]
            text, _ = judge(
                None if expected is None else expected.astype(np.float64), run_reader(reader, folder_files, uid)
            )
            key = "exact" if text.startswith("exact") else "refused ✓" if text.startswith("refused ✓") else "other"
            counts[name][key] += 1
    cells = [f"{c['exact']} exact, {c['refused ✓']} refused rightly, {c['other']} wrong" for c in counts.values()]
    return [f"messy cohort ({n} studies, {len(series)} series)", f"{len(series) - 2} exact, 2 refused", *cells]


def speed_row(root: Path, series: int, slices: int, size: int) -> list[object]:
    from pydicom.uid import generate_uid

    from tests.dicom_files import write_series

    rng = np.random.default_rng(1)
    written = []
    for index in range(series):
        volume = rng.integers(0, 256, (slices, size, size)).astype(np.uint8)
        folder = root / f"speed{index}"
        uid = write_series(volume, folder, "sagittal", seed=index, headers={"FrameOfReferenceUID": generate_uid()})
        written.append((sorted(folder.iterdir()), uid))
    cells = []
    for reader in READERS.values():
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for files, uid in written:
                kind, _, why = run_reader(reader, files, uid)
                if kind != "volume":
                    raise RuntimeError(f"a clean series was refused: {why}")
            best = min(best, time.perf_counter() - started)
        cells.append(f"{series / best:.1f} series/s")
    return [f"speed ({slices} slices of {size}², files cached)", "", *cells]


def installed_mb(distribution: str) -> float:
    files = importlib.metadata.distribution(distribution).files or []
    return sum(f.size or 0 for f in files) / 1e6


def install_row() -> list[object]:
    version = importlib.metadata.version
    pydicom = f"pydicom {version('pydicom')}: {installed_mb('pydicom'):.0f} MB (the dicom extra)"
    highdicom = (
        f"{installed_mb('highdicom'):.0f} MB + pyjpegls {installed_mb('pyjpegls'):.1f} MB; "
        "needs pydicom, numpy, pillow, typing-extensions"
    )
    sitk = f"{installed_mb('SimpleITK'):.0f} MB (wheel 53 MB), no Python dependencies, reads without pydicom"
    return ["installed size", "", pydicom, highdicom, sitk]


def machine() -> str:
    import torch

    return f"{cpu_model_name()}, {os.cpu_count()} cores, torch {torch.__version__}; one thread (OMP_NUM_THREADS=1)"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} at the end (a shared machine)"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", type=Path, default=Path("docs/measured"), help="folder of the records")
    parser.add_argument("--cohort", type=int, default=10, help="studies in the messy cohort")
    args = parser.parse_args(argv)
    import SimpleITK as sitk

    sitk.ProcessObject_SetGlobalDefaultNumberOfThreads(1)
    version = importlib.metadata.version
    columns = ["case", "expected", "project (pydicom + own geometry)"]
    columns += [f"highdicom {version('highdicom')}", f"SimpleITK {version('SimpleITK')} (GDCM)"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows, wrong = case_rows(root / "cases")
        rows.append(cohort_row(root / "cohort", args.cohort))
        rows.append(speed_row(root / "speed", series=8, slices=24, size=256))
    rows.append(["wrong results returned (cases above)", "0", *(str(wrong[name]) for name in READERS)])
    rows.append(install_row())
    command = "`python -m benchmarks.dicom_libraries`"
    reading = {
        "title": "Reading a DICOM series: slice order, rescale, what is refused, speed, install size",
        "command": command,
        "machine": machine(),
        "load": load(),
        "split": SPLIT,
        "columns": columns,
        "rows": rows,
        "provenance": "benchmarks/dicom_libraries.py on files from tests/dicom_files.py and tests/import_cohorts.py",
    }
    print_table(columns, rows)
    resampling_columns, resampling_rows = measure_resampling()
    print_table(resampling_columns, resampling_rows)
    resampling = dict(reading, columns=resampling_columns, rows=resampling_rows, load=load())
    resampling["title"] = "In-plane resampling to 256 x 256 against the same slices acquired with a 256 matrix"
    resampling["split"] = SPLIT + " (synthetic knee slices, k-space cut to each matrix)"
    resampling["provenance"] = "benchmarks/dicom_resampling.py"
    write_json(args.out / "dicom-libraries.json", reading)
    write_json(args.out / "dicom-resampling.json", resampling)


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    from .tables import markdown_table

    print(markdown_table(list(columns), [list(r) for r in rows]), end="\n\n")


if __name__ == "__main__":
    main()

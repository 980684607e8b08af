"""Same knees, two routes: train_all on synthetic knees as `.npy` and on the same knees written as DICOM and imported.

    python -m benchmarks.import_routes [--out runs/import-routes] [--record docs/measured/import-routes.json]

The knees come from `mrnet.synthetic` (an MRNet-layout `.npy` dataset); every exam is then
written as a DICOM study (one file per slice, shuffled file names, its own rescale slope and
intercept on each slice, tests/dicom_files.py), with a labels file whose `split` column puts
each study in the split its `.npy` exam is in, and imported with `import_data dicom`. Both
datasets are trained with the same `train_all` options and seed, and the two AUC tables are
compared task by task. The import numbers cases afresh, so the `.npy` knees are saved again
under the import's case ids (keys.csv maps them): both routes then train on the same knees in
the same order with the same tuning split, and what differs is only what the import did to
the pixels (reading, rescale, slice order, the uint8 mapping).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrnet import PLANES, SPLITS, TASKS
from mrnet.files import write_json

from .results import cpu_model_name

TRAIN_OPTIONS = [
    *("--no-pretrained", "--epochs", "8", "--lr", "1e-4", "--weight-decay", "1e-4"),
    *("--no-augment", "--patience", "0", "--seed", "0"),
]
TARGET = 0.03  # the largest ensemble AUC difference between the routes taken as "the same"


def write_dicom_studies(npy_dir: Path, src: Path, labels_path: Path) -> int:
    """Every exam of the `.npy` dataset as one DICOM study; LABELS.csv names each by accession with its split."""
    from tests.dicom_files import write_series

    rows = []
    for split in SPLITS:
        labels = {t: pd.read_csv(npy_dir / f"{split}-{t}.csv", header=None, dtype={0: str}) for t in TASKS}
        for index, case in enumerate(labels[TASKS[0]][0]):
            headers = {
                "StudyInstanceUID": f"1.2.826.0.1.3680043.10.1001.{int(case) + 1}",
                "PatientID": f"KNEE{case}",
                "AccessionNumber": f"ACC{case}",
                "PatientName": f"Knee^{case}",
            }
            for plane in PLANES:
                volume = np.load(npy_dir / split / plane / f"{case}.npy")
                write_series(
                    volume, src / f"patient{case}" / plane, plane, seed=int(case), headers=headers, prefix=plane[:3]
                )
            rows.append([f"ACC{case}", *(int(labels[t][1][index]) for t in TASKS), split])
    with labels_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study", *TASKS, "split"])
        writer.writerows(rows)
    return len(rows)


def same_valid_knees(npy_dir: Path, imported: Path) -> None:
    """The imported valid split holds exactly the `.npy` valid knees (keys.csv maps case -> accession)."""
    keys = pd.read_csv(imported / "import" / "keys.csv", dtype=str)
    imported_valid = sorted(keys.loc[keys["split"] == "valid", "study"].str.removeprefix("ACC"))
    npy_valid = sorted(pd.read_csv(npy_dir / "valid-acl.csv", header=None, dtype={0: str})[0])
    if imported_valid != npy_valid:
        raise SystemExit(f"the imported valid split is not the .npy one: {imported_valid} != {npy_valid}")


def renumbered(npy_dir: Path, imported: Path, out: Path) -> Path:
    """The `.npy` knees under the imported case ids, with the import's label files (the same labels)."""
    keys = pd.read_csv(imported / "import" / "keys.csv", dtype=str)
    for row in keys.itertuples():
        source = row.study.removeprefix("ACC")
        for plane in PLANES:
            (out / row.split / plane).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(npy_dir / row.split / plane / f"{source}.npy", out / row.split / plane / f"{row.case}.npy")
    for labels in imported.glob("*-*.csv"):
        shutil.copyfile(labels, out / labels.name)
    return out


def train(data: Path, models: Path) -> tuple[pd.DataFrame, float]:
    from mrnet.cli import train_all

    start = time.perf_counter()
    train_all.main(["--data-dir", str(data), "--models-dir", str(models), *TRAIN_OPTIONS])
    return pd.read_csv(models / "auc_table.csv"), time.perf_counter() - start


def record(tables: dict[str, pd.DataFrame], n: dict[str, int], seconds: dict[str, float], load: str) -> dict[str, Any]:
    columns = ["task", "route", *PLANES, "ensemble", "ensemble_fit_on", "ensemble_scored"]
    rows: list[list[Any]] = []
    for task in TASKS:
        by_route = {route: table.set_index("task").loc[task] for route, table in tables.items()}
        for route, row in by_route.items():
            rows.append([task, route, *(f"{row[c]:.4f}" for c in (*PLANES, "ensemble")), *row[columns[-2:]]])
        diff = [by_route["imported DICOM"][c] - by_route[".npy"][c] for c in (*PLANES, "ensemble")]
        rows.append([task, "DICOM - .npy", *(f"{d:+.4f}" for d in diff), "", ""])
    return {
        "title": "The same synthetic knees trained from .npy and from imported DICOM: AUCs on the valid split",
        "command": f"`python -m benchmarks.import_routes` ({n['train']} train + {n['valid']} valid knees, "
        "make_synthetic --size 64 --slices 8 14 --seed 0, written as DICOM, imported with "
        "`import_data.py dicom --size 64` and a `split` column, the .npy knees saved again under the import's "
        "case ids; both trained with `train_all.py "
        + " ".join(TRAIN_OPTIONS)
        + f"`; train_all took {seconds['.npy']:.0f} s on .npy and {seconds['imported DICOM']:.0f} s on the import)",
        "machine": f"{cpu_model_name()}, {os.cpu_count()} cores; one thread (OMP_NUM_THREADS=1)",
        "load": load,
        "split": "the valid split, the same knees on both routes; the same tuning split (train knees held out "
        "of training) chose the epochs and fitted the stackers on both",
        "columns": columns,
        "rows": rows,
        "provenance": "each route's auc_table.csv as train_all wrote it, read by python -m benchmarks.import_routes",
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--out", type=Path, default=Path("runs/import-routes"), help="work folder (replaced)")
    parser.add_argument("--record", type=Path, default=Path("docs/measured/import-routes.json"))
    parser.add_argument("--train", type=int, default=60, help="training knees (default 60)")
    parser.add_argument("--valid", type=int, default=30, help="valid knees (default 30)")
    args = parser.parse_args(argv)
    from mrnet.cli import import_data
    from mrnet.synthetic import make_dataset

    shutil.rmtree(args.out, ignore_errors=True)
    npy_dir, imported = args.out / "npy", args.out / "imported"
    make_dataset(npy_dir, n_train=args.train, n_valid=args.valid, size=64, seed=0, slices=(8, 14))
    studies = write_dicom_studies(npy_dir, args.out / "dicom", args.out / "LABELS.csv")
    print(f"{studies} DICOM studies written")
    labels = str(args.out / "LABELS.csv")
    import_data.main(["dicom", str(args.out / "dicom"), "--labels", labels, "--out", str(imported), "--size", "64"])
    same_valid_knees(npy_dir, imported)
    same_ids = renumbered(npy_dir, imported, args.out / "npy-same-ids")
    tables, seconds = {}, {}
    for route, data in ((".npy", same_ids), ("imported DICOM", imported)):
        tables[route], seconds[route] = train(data, args.out / ("models-" + data.name))
    load = "load average {:.1f} / {:.1f} / {:.1f} at the end (a shared machine, other jobs running)".format(
        *os.getloadavg()
    )
    result = record(tables, {"train": args.train, "valid": args.valid}, seconds, load)
    write_json(args.record, result)
    worst = max(abs(float(r[5])) for r in result["rows"] if r[1] == "DICOM - .npy")
    print(f"largest ensemble AUC difference {worst:.4f} (target {TARGET}); record {args.record}")


if __name__ == "__main__":
    main()

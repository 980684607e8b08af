"""MODEL_CARD.md: what a bundle is for, what it was trained on, how its numbers were made.

Hugging Face's model-card layout (YAML front matter with license, tags and metrics, then
intended use, training data, protocol, results, limitations), written from what the run
recorded. Every AUC names the split it was computed on and how its probabilities relate to
the model (held-out, out-of-fold, in-sample), and the protocol says which split chose the
epochs and which fitted the stacker, so no figure reads as a test result it is not.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from .. import PLANES, __version__
from ..data.transforms import MRNET_MEAN, MRNET_STD
from .record import RunRecord

RESEARCH_STATEMENT = (
    "Research use only: not a medical device, not cleared or approved for clinical use; its output must not be "
    "used to diagnose or treat patients."
)
TASK_NAMES = {"abnormal": "any abnormality", "acl": "anterior cruciate ligament tear", "meniscus": "meniscal tear"}


def model_card(record: RunRecord, name: str, license_id: str, notes: str | None) -> str:
    return "\n".join([front_matter(record, name, license_id), *sections(record, name, notes)]) + "\n"


def front_matter(record: RunRecord, name: str, license_id: str) -> str:
    """YAML written by hand (plain keys and numbers) so no YAML library is needed; model-index holds the AUCs."""
    lines = ["---", f"license: {license_id}", "library_name: mrnet", "tags:"]
    lines += [f"  - {tag}" for tag in ("medical-imaging", "knee-mri", "mri", "image-classification", "mrnet")]
    lines += ["metrics:", "  - roc_auc", "model-index:", f"  - name: {json.dumps(name)}", "    results:"]
    for row in record.aucs:
        if row.model != "ensemble":
            continue
        lines += [
            "      - task:",
            "          type: image-classification",
            f"          name: {json.dumps(TASK_NAMES.get(row.task, row.task))}",
            "        dataset:",
            "          name: the run's own data (see Training data)",
            "          type: knee-mri",
            f"          split: {row.split}",
            "        metrics:",
            "          - type: roc_auc",
            f"            value: {_yaml_number(row.auc)}",
            f"            name: {json.dumps(f'{row.task} ensemble AUC on {row.split} ({row.scored})')}",
        ]
    return "\n".join([*lines, "---"])


def sections(record: RunRecord, name: str, notes: str | None) -> list[str]:
    out = [
        f"# {name}",
        "",
        f"Knee-MRI classifiers made with MRNet {__version__} (per-plane CNNs and a logistic-regression stacker per "
        f"task, after Bien et al., PLOS Medicine 2018): tasks {', '.join(record.tasks)}; planes {', '.join(PLANES)}.",
        "",
        "## Intended use",
        "",
        RESEARCH_STATEMENT,
        "",
        "Input: one knee MRI exam as three series (axial, coronal, sagittal), as .npy files or DICOM. Output per task: "
        "a probability from each plane's model and from the stacker (the number to read), its operating threshold "
        "and the call.",
        "",
        *training_data(record),
        *protocol(record),
        *results(record),
        *operating_points(record),
        "## Limitations",
        "",
        "- The figures hold for exams like the training data (scanner, protocol, population); "
        "on other data they are unknown until measured there.",
        "- A small validation split gives wide intervals: read the intervals, not the point AUCs.",
        "- DICOM input is converted to 8-bit series by this project's reader; the original data's export and "
        "windowing may differ, which adds uncertainty to predictions on converted series.",
        "- The plane models' probabilities rank exams but are not calibrated (class-weighted training); "
        "read the ensemble's.",
        "",
    ]
    if notes:
        out += ["## Notes", "", notes.strip(), ""]
    out += [
        "## How to use",
        "",
        "```",
        f"mrnet predict --bundle {name}.zip --exam-dir EXAM",
        f"mrnet export unpack {name}.zip --out models",
        "```",
        "",
    ]
    return out


def training_data(record: RunRecord) -> list[str]:
    lines = ["## Training data", "", "| task | split | exams | positives | slice sizes | fingerprint (sha256) |"]
    lines.append("|---|---|---|---|---|---|")
    for task in record.tasks:
        data = record.checkpoints[f"{task}-{PLANES[0]}"].get("data") or {}
        for split in ("train", "valid"):
            entry = data.get(split) or {}
            labels = str(entry.get("labels", ""))
            sizes = ", ".join(str(s) for s in entry.get("sizes", []))
            lines.append(
                f"| {task} | {split} | {len(entry.get('cases', []))} | {labels.count('1')} | {sizes} | "
                f"`{entry.get('sha256', 'not recorded')}` |"
            )
    tune = record.files.get("tune_cases.csv")
    if tune is not None:
        count = max(len(tune.read_text().splitlines()) - 1, 0)
        lines += [
            "",
            f"A tuning split of {count} exams was carved from train (tune_cases.csv): the models did not train on it.",
        ]
    return [*lines, ""]


def protocol(record: RunRecord) -> list[str]:
    first = record.plain(f"{record.tasks[0]}-{PLANES[0]}")
    config, args = first.get("config") or {}, first.get("model_args") or {}
    chosen = Counter(str(record.plain(n).get("select_split")) for n in record.checkpoints)
    monitors = Counter(str(record.plain(n).get("monitor")) for n in record.checkpoints)
    epochs = {n: record.plain(n).get("best_epoch") for n in record.checkpoints}
    lines = [
        "## Protocol",
        "",
        f"- Plane models: {args.get('backbone', 'alexnet')} backbone, {args.get('pool', 'max')} pool over slices, "
        f"{'ImageNet-pretrained' if config.get('pretrained') else 'trained from scratch'}, up to "
        f"{config.get('epochs', '?')} epochs, slice size {first.get('image_size', '?')} px.",
        f"- Epochs chosen on: {_counted(chosen)} split (best {_counted(monitors)}); best epoch per model: "
        + ", ".join(f"{n} {e}" for n, e in epochs.items())
        + ".",
    ]
    where = {
        "tune": "the tune split (exams carved from train that the plane models did not train on)",
        "train": "the train split (the exams the plane models trained on: the paper's protocol)",
        "valid-cv": "the valid split, cross-validated (its valid figures are out-of-fold)",
    }
    for task, saved in record.ensembles.items():
        cases = f", {len(saved.fit_cases)} exams" if saved.fit_cases is not None else ""
        lines.append(
            f"- Stacker of {task}: fitted on {where.get(saved.fit_on, saved.fit_on)} (--fit-on {saved.fit_on}{cases}), "
            f"on the planes' {saved.features}."
        )
    lines += [
        f"- Preprocessing: each series min-max scaled to 0..255, then (x - {MRNET_MEAN}) / {MRNET_STD}, one grey "
        "channel (the first convolution's kernels summed over RGB); slices resized to the model's slice size.",
        "",
    ]
    return lines


def results(record: RunRecord) -> list[str]:
    lines = [
        "## Results",
        "",
        "| task | model | split | exams (positives) | AUC | 95% CI | figures are |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in record.aucs:
        lines.append(
            f"| {row.task} | {row.model} | {row.split} | {row.n} ({row.positives}) | {_num(row.auc)} | "
            f"{_num(row.low)} to {_num(row.high)} | {row.scored} |"
        )
    sources = sorted({row.source for row in record.aucs})
    lines += ["", f"Source: {'; '.join(sources)}.", ""]
    return lines


def operating_points(record: RunRecord) -> list[str]:
    lines = ["## Operating points", "", "| task | model | threshold | chosen on | scored |", "|---|---|---|---|---|"]
    for task, saved in record.ensembles.items():
        for model, t in saved.thresholds.items():
            lines.append(f"| {task} | {model} | {_num(t.threshold)} | {t.chosen_on} | {t.scored} |")
    lines += ["", "Thresholds maximise Youden's J (sensitivity + specificity - 1) on the split named.", ""]
    return lines


def _counted(counts: Counter) -> str:
    return ", ".join(f"{key} ({n} models)" if len(counts) > 1 else key for key, n in counts.items())


def _num(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _yaml_number(value: float) -> str:
    return ".nan" if math.isnan(value) else f"{value:.4f}"

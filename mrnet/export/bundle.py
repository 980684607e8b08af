"""Writing a bundle: a trained run as one zip file that loads without running code.

Members: per plane model its weights as safetensors and its other checkpoint fields as
JSON, its ONNX file when one was exported from those weights; the stackers and thresholds
as the JSON and CSV the commands read; the slice size and normalisation; MODEL_CARD.md; and
manifest.json with the sha256 of each. Members carry a fixed timestamp, so the same run
gives the same bytes.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .. import PLANES, __version__, layout
from ..data.transforms import MAX_PIXEL, MRNET_MEAN, MRNET_STD
from ..errors import MRNetError
from ..files import atomic_write, json_text
from . import manifest as mf
from .card import model_card
from .record import read_run
from .weights import split_checkpoint, weights_bytes

FIXED_TIME = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class BundleResult:
    path: Path
    sha256: str
    members: dict[str, str]  # member -> sha256
    onnx: list[str]  # the plane models whose ONNX file went in


def preprocessing(image_sizes: dict[str, int]) -> dict[str, object]:
    """What turns a uint8 series into the model's input: written once in data/transforms.py, described here."""
    return {
        "input": "uint8 series (slices, H, W), square slices, resized bilinearly to the model's image_size",
        "scaling": f"per series: (x - min) * {MAX_PIXEL} / (max - min)",
        "mean": MRNET_MEAN,
        "std": MRNET_STD,
        "normalised": "(scaled - mean) / std",
        "model_input": "float32 (slices, 1, image_size, image_size): one grey channel",
        "image_sizes": image_sizes,
    }


def make_bundle(
    models_dir: str | Path,
    out: str | Path,
    *,
    name: str | None = None,
    version: str = "1.0",
    license_id: str = "other",
    card_notes: str | None = None,
    tasks: list[str] | None = None,
) -> BundleResult:
    """Bundle every ready task of a run into `out` (written atomically)."""
    from .onnx_export import onnx_weights_sha256  # reads the ONNX metadata only

    record = read_run(models_dir, tasks)
    out = Path(out)
    name = name or out.stem
    members: dict[str, bytes] = {}
    models, onnx = {}, []
    for model_name, ckpt in record.checkpoints.items():
        weights, plain = split_checkpoint(ckpt)
        data = weights_bytes(weights)
        members[mf.model_member(model_name, mf.WEIGHTS)] = data
        members[mf.model_member(model_name, mf.CHECKPOINT_FIELDS)] = json_text(plain).encode()
        best = layout.best_checkpoint(models_dir, plain["task"], plain["plane"])
        entry = {
            "task": plain["task"],
            "plane": plain["plane"],
            "weights": mf.model_member(model_name, mf.WEIGHTS),
            "checkpoint_sha256": record.ensembles[plain["task"]].checkpoints[plain["plane"]],
            "image_size": plain.get("image_size"),
            "model_args": plain.get("model_args"),
        }
        onnx_path = best.with_name(mf.ONNX)
        if onnx_path.is_file():
            if onnx_weights_sha256(onnx_path) != hashlib.sha256(data).hexdigest():
                raise MRNetError(f"{onnx_path} was exported from other weights than {best}; export it again")
            entry["onnx"] = mf.model_member(model_name, mf.ONNX)
            members[entry["onnx"]] = onnx_path.read_bytes()
            onnx.append(model_name)
        models[model_name] = entry
    for task in record.tasks:
        members[f"ensemble-{task}.json"] = layout.ensemble_file(models_dir, task).read_bytes()
    for member, path in record.files.items():
        members[member] = path.read_bytes()
    report_metrics = layout.report_dir(models_dir) / "metrics.csv"
    if report_metrics.is_file():
        members[mf.REPORT_METRICS] = report_metrics.read_bytes()
    sizes = {n: int(c.get("image_size") or 256) for n, c in record.checkpoints.items()}
    members[mf.PREPROCESSING] = json_text(preprocessing(sizes)).encode()
    notes = Path(card_notes).read_text(encoding="utf-8") if card_notes else None
    members[mf.CARD] = model_card(record, name, license_id, notes).encode()
    hashes = {member: hashlib.sha256(data).hexdigest() for member, data in sorted(members.items())}
    unknown = [m for m in hashes if not mf.ALLOWED.match(m)]
    if unknown:
        raise MRNetError(f"internal: bundle members {unknown} have no place in the format")
    manifest = {
        "format": mf.FORMAT,
        "format_version": mf.FORMAT_VERSION,
        "name": name,
        "version": version,
        "mrnet_version": __version__,
        "tasks": record.tasks,
        "planes": list(PLANES),
        "models": models,
        "members": hashes,
    }

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for member, data in [(mf.MANIFEST, json_text(manifest).encode()), *sorted(members.items())]:
                archive.writestr(zipfile.ZipInfo(member, FIXED_TIME), data, compress_type=zipfile.ZIP_DEFLATED)

    atomic_write(out, write)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return BundleResult(out, digest, hashes, onnx)

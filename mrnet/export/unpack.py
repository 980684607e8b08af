"""Reading a bundle: every member checked before anything is written, nothing unpickled.

A bundle is refused, naming the member, when a member is missing from the manifest or
listed but absent, when its sha256 differs, when it is named or starts like a pickle, or
when its name has no place in the format. Only then are the weights read (safetensors:
a JSON header and raw tensors), the checkpoints rebuilt in the project's format, and the
stackers written back with the hashes of the rebuilt best.pt files, after checking that each
stacker was fitted on the very weights the bundle holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import layout
from ..checkpoint import save_checkpoint
from ..ensemble.file import SavedEnsemble, ensemble_text, file_sha256, problems
from ..errors import MRNetError
from ..files import write_json
from . import manifest as mf
from .weights import join_checkpoint, weights_from_bytes

MAX_MEMBER_BYTES = 4 << 30  # larger than any plane model; a member claiming more is refused unread
BUNDLE_RECORD = "bundle.json"  # written into an unpacked run: which bundle it came from (for DICOM SR)


@dataclass(frozen=True)
class Bundle:
    """A verified bundle's contents, in memory: its manifest, members and identity."""

    path: Path
    sha256: str
    manifest: dict[str, Any]
    members: dict[str, bytes]

    @property
    def identity(self) -> dict[str, str]:
        return {"name": self.manifest["name"], "version": self.manifest["version"], "sha256": self.sha256}


def read_bundle(path: str | Path) -> Bundle:
    """Open and verify a bundle; raise MRNetError naming the first member that is wrong."""
    path = Path(path)
    if not path.is_file():
        raise MRNetError(f"bundle {path} not found")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise MRNetError(f"{path} is not a readable bundle (a zip file): {err}") from None
    with archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise MRNetError(f"{path}: member {duplicated[0]} appears more than once")
        members = {}
        for info in infos:
            members[info.filename] = _read_member(archive, info, path)
    if mf.MANIFEST not in members:
        raise MRNetError(f"{path} has no {mf.MANIFEST}: not an MRNet bundle")
    manifest = _manifest(members.pop(mf.MANIFEST), path)
    listed = manifest["members"]
    for member in sorted(set(members) - set(listed)):
        raise MRNetError(f"{path}: member {member} is not in the manifest; the bundle was changed, refused")
    for member in sorted(set(listed) - set(members)):
        raise MRNetError(f"{path}: member {member} is listed in the manifest but missing")
    for member, data in members.items():
        if hashlib.sha256(data).hexdigest() != listed[member]:
            raise MRNetError(f"{path}: member {member} does not match its sha256 in the manifest; refused")
    for name, entry in manifest["models"].items():
        for member in (entry["weights"], entry.get("onnx")):
            if member is not None and member not in members:
                raise MRNetError(f"{path}: model {name} names member {member}, which the bundle lacks")
    return Bundle(path, file_sha256(path), manifest, members)


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """A member's bytes, after its name and size are checked; a pickle is refused from its name or first bytes."""
    name = info.filename
    if name.lower().endswith(mf.PICKLE_SUFFIXES):
        raise MRNetError(f"{path}: member {name} is a pickle (it could run code when loaded); refused")
    if name != mf.MANIFEST and not mf.ALLOWED.match(name):
        raise MRNetError(f"{path}: member {name} has no place in an MRNet bundle; refused")
    if info.file_size > MAX_MEMBER_BYTES:
        raise MRNetError(f"{path}: member {name} claims {info.file_size} bytes, more than a bundle member may hold")
    with archive.open(info) as handle:
        data = handle.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise MRNetError(f"{path}: member {name} holds more than {MAX_MEMBER_BYTES} bytes")
    if mf.looks_pickled(name, data[:4]):
        raise MRNetError(f"{path}: member {name} holds a pickle (it could run code when loaded); refused")
    return data


def _manifest(data: bytes, path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise MRNetError(f"{path}: {mf.MANIFEST} is not readable JSON ({err})") from None
    found = mf.manifest_problems(manifest)
    if found:
        raise MRNetError(f"{path}: {mf.MANIFEST} is not valid: {'; '.join(found)}")
    return manifest


def _json(bundle: Bundle, member: str) -> Any:
    try:
        return json.loads(bundle.members[member].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise MRNetError(f"{bundle.path}: member {member} is not readable JSON ({err})") from None


def write_run(bundle: Bundle, out: Path) -> None:
    """The bundle as a run folder in `out` (which must not exist yet); the stackers re-record the rebuilt best.pt."""
    new_hashes: dict[str, dict[str, str]] = {}
    for name, entry in bundle.manifest["models"].items():
        weights = weights_from_bytes(bundle.members[entry["weights"]], f"{bundle.path}: member {entry['weights']}")
        fields_member = mf.model_member(name, mf.CHECKPOINT_FIELDS)
        plain = _json(bundle, fields_member)
        if not isinstance(plain, dict) or (plain.get("task"), plain.get("plane")) != (entry["task"], entry["plane"]):
            raise MRNetError(f"{bundle.path}: member {fields_member} is not the checkpoint of {name}")
        best = layout.best_checkpoint(out, entry["task"], entry["plane"])
        best.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(join_checkpoint(weights, plain), best)
        if entry.get("onnx"):
            best.with_name(mf.ONNX).write_bytes(bundle.members[entry["onnx"]])
        new_hashes.setdefault(entry["task"], {})[entry["plane"]] = file_sha256(best)
    for task in bundle.manifest["tasks"]:
        member = f"ensemble-{task}.json"
        payload = _json(bundle, member)
        found = problems(payload, task)
        if found:
            raise MRNetError(f"{bundle.path}: member {member} is not a valid ensemble file: {'; '.join(found)}")
        for plane, digest in payload["checkpoints"].items():
            recorded = bundle.manifest["models"].get(layout.model_name(task, plane), {}).get("checkpoint_sha256")
            if recorded != digest:
                raise MRNetError(
                    f"{bundle.path}: member {member} was fitted on another {plane} model than the bundle holds"
                )
        saved = SavedEnsemble.from_payload({**payload, "checkpoints": new_hashes[task]})
        layout.ensemble_file(out, task).write_text(ensemble_text(saved))
    for member, data in bundle.members.items():
        if member in mf.RUN_FILES or member in (mf.CARD, mf.PREPROCESSING, mf.REPORT_METRICS):
            target = out / member
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    write_json(out / BUNDLE_RECORD, {**bundle.identity, "file": bundle.path.name})


def unpack_bundle(path: str | Path, out: str | Path) -> Bundle:
    """Verify a bundle and write it as a run folder; `out` appears complete or not at all."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MRNetError(f"--out {out} exists and is not empty; choose a new folder")
    bundle = read_bundle(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write_run(bundle, staging)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return bundle


@contextlib.contextmanager
def bundle_models(bundle: str | Path | None, models_dir: str) -> Iterator[str]:
    """The models folder a command reads: `models_dir`, or a verified bundle unpacked for the command's run."""
    if bundle is None:
        yield models_dir
        return
    with tempfile.TemporaryDirectory(prefix="mrnet-bundle-") as folder:
        run = Path(folder) / Path(bundle).stem
        unpack_bundle(bundle, run)
        yield str(run)

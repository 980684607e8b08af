"""The bundle's manifest and the names its members may have: the part of the format both writer and reader share.

`manifest.json` lists every other member with its sha256, the format version, and per plane
model its weights member, the sha256 of the best.pt those weights came from (what the
stackers recorded when they were fitted) and its ONNX file if one was exported. A reader
accepts only the member names below, every one listed and matching its hash.
"""

from __future__ import annotations

import re
from typing import Any

from .. import PLANES, TASKS, layout

FORMAT = "mrnet-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CARD = "MODEL_CARD.md"
PREPROCESSING = "preprocessing.json"
REPORT_METRICS = "report/metrics.csv"
WEIGHTS = "model.safetensors"
CHECKPOINT_FIELDS = "checkpoint.json"
ONNX = "model.onnx"
RUN_FILES = (layout.AUC_TABLE, layout.THRESHOLDS, layout.META_CONFIG, layout.TUNE_CASES)

_TASK, _PLANE = "|".join(TASKS), "|".join(PLANES)
ALLOWED = re.compile(
    rf"^(?:{re.escape(CARD)}|{re.escape(PREPROCESSING)}|{re.escape(REPORT_METRICS)}"
    rf"|{'|'.join(re.escape(name) for name in RUN_FILES)}"
    rf"|ensemble-(?:{_TASK})\.json"
    rf"|models/(?:{_TASK})-(?:{_PLANE})/(?:{re.escape(WEIGHTS)}|{re.escape(CHECKPOINT_FIELDS)}|{re.escape(ONNX)}))$"
)
# What pickled data starts with: a protocol 2-5 pickle, or the zip of torch.save (which holds data.pkl).
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".joblib", ".ckpt", ".bin")
ZIP_MAGIC = b"PK\x03\x04"


def model_member(name: str, file: str) -> str:
    return f"models/{name}/{file}"


def looks_pickled(name: str, head: bytes) -> bool:
    """A member named like a pickle, or whose bytes start like one (safetensors' first bytes are a length)."""
    if name.lower().endswith(PICKLE_SUFFIXES):
        return True
    if name.endswith(WEIGHTS):
        return False
    return (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head.startswith(ZIP_MAGIC)


def manifest_problems(manifest: Any) -> list[str]:
    """What makes a parsed manifest unusable, in a few words each; empty when it can be read."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return [f"no '{FORMAT}' marker"]
    if manifest.get("format_version") != FORMAT_VERSION:
        return [f"format version {manifest.get('format_version')!r}, this version reads {FORMAT_VERSION}"]
    found = []
    members = manifest.get("members")
    if not (isinstance(members, dict) and all(isinstance(h, str) and len(h) == 64 for h in members.values())):
        found.append("members: expected a sha256 per member")
    models = manifest.get("models")
    if not isinstance(models, dict):
        found.append("models: expected an entry per plane model")
    else:
        for name, entry in models.items():
            fields = ("task", "plane", "weights", "checkpoint_sha256")
            if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in fields):
                found.append(f"models.{name}: expected {', '.join(fields)}")
            elif name != layout.model_name(entry["task"], entry["plane"]):
                found.append(f"models.{name}: names task {entry['task']} and plane {entry['plane']}")
    tasks = manifest.get("tasks")
    if not (isinstance(tasks, list) and tasks and all(t in TASKS for t in tasks)):
        found.append(f"tasks {tasks!r}, expected some of {', '.join(TASKS)}")
    return found

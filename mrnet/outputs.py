"""Output folders that hold one run's files: each command lists what it wrote, and its next run removes the rest.

A command writing into a folder (predict --out, --html, --cam; evaluate --out) records in
that folder's outputs.json the files it wrote. Its next run into the same folder removes
the files of that list it did not write again (an exam no longer given, a task no longer
evaluated), so no file of an earlier run sits beside the new ones looking current. Only
files on the command's own list are removed: the user's files, and other commands' outputs
in the same folder, are left alone. A run that stops with an error removes nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from .files import write_json

MANIFEST = "outputs.json"
FORMAT = "mrnet-outputs"
FORMAT_VERSION = 1


class OutputFolders:
    """The folders one command run writes to, and the files it wrote into each."""

    def __init__(self, command: str, *roots: str | Path | None) -> None:
        self.command = command
        resolved = {Path(root).resolve(): Path(root) for root in roots if root is not None}
        # Deepest first: a file belongs to the innermost output folder that holds it (--html inside --out).
        self.roots = sorted(resolved, key=lambda root: len(root.parts), reverse=True)
        self.written: dict[Path, set[str]] = {root: set() for root in self.roots}

    def add(self, paths: Iterable[str | Path]) -> None:
        """Files this run wrote; a path outside every output folder is not tracked."""
        for path in paths:
            full = Path(path).resolve()
            for root in self.roots:
                if full.is_relative_to(root):
                    self.written[root].add(full.relative_to(root).as_posix())
                    break

    def finish(self) -> list[Path]:
        """Remove each folder's files of this command's previous run that this run did not write; list the new ones.

        Returns the files removed.
        """
        removed = []
        for root in self.roots:
            lists = read_manifest(root)
            for name in sorted(set(lists.get(self.command, [])) - self.written[root]):
                path = inside(root, name)
                if path is not None and (path.is_file() or path.is_symlink()):
                    path.unlink()
                    removed.append(path)
                    remove_empty_parents(path.parent, root)
            lists[self.command] = sorted(self.written[root])
            write_json(root / MANIFEST, {"format": FORMAT, "format_version": FORMAT_VERSION, "commands": lists})
        return removed


def read_manifest(root: Path) -> dict[str, list[str]]:
    """command -> the files it wrote last time; empty when there is no readable manifest (nothing is removed)."""
    try:
        payload = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    commands = payload.get("commands") if isinstance(payload, dict) and payload.get("format") == FORMAT else None
    if not isinstance(commands, dict):
        return {}
    return {
        command: [name for name in names if isinstance(name, str)]
        for command, names in commands.items()
        if isinstance(command, str) and isinstance(names, list)
    }


def inside(root: Path, name: str) -> Path | None:
    """root/name when it stays inside root (a relative path without '..'); None for anything else."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return None
    path = root / relative
    return path if path.parent.resolve().is_relative_to(root) else None  # not through a link leading out


def remove_empty_parents(folder: Path, root: Path) -> None:
    """Remove folders left empty below root (a heatmap folder of an exam no longer predicted)."""
    while folder != root and folder.is_relative_to(root):
        with contextlib.suppress(OSError):
            if not any(os.scandir(folder)):
                folder.rmdir()
                folder = folder.parent
                continue
        return

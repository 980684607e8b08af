"""How the user started this process, so a message names another command the way they would type it.

An installed wheel has no scripts/ folder, and a clone may have nothing installed: a hint such
as "run train-meta first" reads `python scripts/train_meta.py`, `mrnet-train-meta` or
`mrnet train-meta` after the command that printed it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Every command of the package, as `mrnet <command>` and `mrnet-<command>` name it.
COMMAND_NAMES = (
    "make-synthetic",
    "import-data",
    "train-plane",
    "train-meta",
    "train-all",
    "evaluate",
    "predict",
    "compare",
    "export",
)
_CLI_FOLDER = Path(__file__).resolve().parent / "cli"


def command(name: str, started_as: str | None = None) -> str:
    """`name` (e.g. "train-meta") spelled like the command this process was started as (`started_as`: sys.argv[0]).

    mrnet's entry point sets sys.argv[0] to "mrnet train-plane" (or "python -m mrnet train-plane");
    a console script's is its path; a script from a clone's scripts/ folder is run by python. Anything
    else (a notebook, a test, `python -m mrnet.cli.train_plane`) gets `python -m mrnet`, which works
    wherever the package imports.
    """
    if name not in COMMAND_NAMES:
        raise ValueError(f"unknown command {name!r}")
    started = sys.argv[0] if started_as is None and sys.argv else (started_as or "")
    head, space, last = started.rpartition(" ")
    if space and last in COMMAND_NAMES:
        return f"{head} {name}"
    path = Path(started)
    stem = path.name.removesuffix(".exe").removesuffix("-script.py")  # Windows' console-script launchers
    if stem.startswith("mrnet-") and stem[len("mrnet-") :] in COMMAND_NAMES:
        return f"mrnet-{name}"
    script = path.suffix == ".py" and path.stem.replace("_", "-") in COMMAND_NAMES
    if script and path.resolve().parent != _CLI_FOLDER:
        return f"python {path.with_name(name.replace('-', '_') + '.py')}"
    return f"python -m mrnet {name}"

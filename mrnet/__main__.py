"""mrnet <command> [options] (or python -m mrnet <command>): every command of the package from one entry point."""

from __future__ import annotations

import importlib
import os
import sys

from .cli import COMMANDS


def program(started_as: str) -> str:
    """How the user called this entry point: the `mrnet` console script, or `python -m mrnet`."""
    name = os.path.basename(started_as)
    return "python -m mrnet" if name in ("__main__.py", "") else name.removesuffix(".exe")


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = program(sys.argv[0] if sys.argv else "")
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        known = ", ".join(COMMANDS)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}; choose one of: {known}", file=sys.stderr)
            sys.exit(2)
        print(f"usage: {prog} COMMAND [options]\n\ncommands: {known}\nEach command's options: {prog} COMMAND --help")
        return
    command = importlib.import_module(COMMANDS[argv[0]])
    # The command's usage line and its messages (mrnet.invocation) name it as the user did.
    sys.argv = [f"{prog} {argv[0]}", *argv[1:]]
    command.run()


if __name__ == "__main__":
    main()

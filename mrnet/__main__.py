"""python -m mrnet <command> [options]: every command of the package from one entry point."""

from __future__ import annotations

import importlib
import sys

from .cli import COMMANDS


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        known = ", ".join(COMMANDS)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {argv[0]!r}; choose one of: {known}", file=sys.stderr)
            sys.exit(2)
        print(
            f"usage: python -m mrnet COMMAND [options]\n\ncommands: {known}\n"
            "Each command's options: python -m mrnet COMMAND --help"
        )
        return
    command = importlib.import_module(COMMANDS[argv[0]])
    sys.argv = [f"mrnet {argv[0]}", *argv[1:]]
    command.run()


if __name__ == "__main__":
    main()

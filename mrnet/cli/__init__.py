"""The commands: argparse, printing and exit codes, apart from the library they call.

Each module is one command, named like it, with `get_args_parser()`, `main(argv)` (returns
what the command computed, for tests and notebooks) and `run()` (the console entry point).
Library imports happen inside `main`, so `--help` answers without loading torch.
"""

from ..invocation import COMMAND_NAMES

# command name -> module, for `mrnet <command>`, `python -m mrnet <command>` and the console scripts.
COMMANDS = {name: f"mrnet.cli.{name.replace('-', '_')}" for name in COMMAND_NAMES}

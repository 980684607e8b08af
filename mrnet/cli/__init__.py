"""The commands: argparse, printing and exit codes, apart from the library they call.

Each module is one command, named like it, with `get_args_parser()`, `main(argv)` (returns
what the command computed, for tests and notebooks) and `run()` (the console entry point).
Library imports happen inside `main`, so `--help` answers without loading torch.
"""

# command name -> module, for `python -m mrnet <command>` and the console scripts.
COMMANDS = {
    "make-synthetic": "mrnet.cli.make_synthetic",
    "train-plane": "mrnet.cli.train_plane",
    "train-meta": "mrnet.cli.train_meta",
    "train-all": "mrnet.cli.train_all",
    "evaluate": "mrnet.cli.evaluate",
    "predict": "mrnet.cli.predict",
    "compare": "mrnet.cli.compare",
}

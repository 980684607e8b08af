"""What every command shares: turning library errors into messages, and the option groups used by several."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import Field
from typing import Any

from .. import FIT_ON, PLANES, TASKS
from ..errors import INTERRUPTED, MRNetError
from ..options import default_of, flags_of, help_of, option_field, options_of, value_type
from ..training.config import TrainConfig  # a dataclass module: no torch import

EVAL_SLICES_HELP = help_of(option_field(TrainConfig, "eval_max_slices"))  # the same for every command that scores
THREADS_HELP = help_of(option_field(TrainConfig, "threads"))


def run_cli(main: Callable[[Sequence[str] | None], object], argv: Sequence[str] | None = None) -> None:
    """Run a command's main(); turn user errors, Ctrl-C and SIGTERM into a message and an exit status.

    SIGTERM (a job scheduler's stop, `kill`) takes the same path as Ctrl-C, so completed
    epochs stay saved, the run lock is released and the user is told how to continue.
    """
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        main(argv)
    except MRNetError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:
        signum = err.args[0] if err.args and isinstance(err.args[0], int) else signal.SIGINT
        print(INTERRUPTED, file=sys.stderr)
        sys.exit(128 + signum)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signum)


class Unique(argparse.Action):
    """A list option (--tasks acl acl) with each value once, in the order given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, list(dict.fromkeys(values)))


class ArgumentParser(argparse.ArgumentParser):
    """The parser of every command: no abbreviated options, and no single-value option given twice.

    argparse would take --lr for --lr-factor, and keep the last of `--out a --out b` without a
    word; both are refused here. Options meant to repeat (append, such as --series) still may.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # --lr must not stand for --lr-factor
        super().__init__(*args, **kwargs)

    def parse_args(  # type: ignore[override]  # the same call, without argparse's overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        return super().parse_args(self._once(args), namespace)  # before a subclass reads any option (--config)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        return super().parse_known_args(self._once(args), namespace)

    def _once(self, args: Sequence[str] | None) -> list[str]:
        tokens = list(sys.argv[1:] if args is None else args)
        repeated = repeated_option(self, tokens)
        if repeated:
            self.error(repeated)
        return tokens


REPEATABLE = (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction, argparse._HelpAction)


def repeated_option(parser: argparse.ArgumentParser, tokens: Sequence[str]) -> str | None:
    """A message for the first option that takes a value and is given twice (under any of its names), or None."""
    first: dict[argparse.Action, str] = {}
    for token in tokens:
        if token == "--":
            break
        name = token.split("=", 1)[0]
        action = parser._option_string_actions.get(name) if token.startswith("-") else None
        if action is None or isinstance(action, REPEATABLE) or action.nargs == 0:
            continue
        if action in first:
            return f"argument {name}: given more than once (first as {first[action]}); give it once"
        first[action] = name
    return None


def parser(description: str) -> argparse.ArgumentParser:
    return ArgumentParser(description=description)


def add_models_dir(parser: argparse.ArgumentParser, default: str | None, help_text: str) -> None:
    """One name for the models folder in every command; --output-dir stays as the training commands' alias."""
    parser.add_argument("--models-dir", "--output-dir", dest="models_dir", default=default, help=help_text)


def add_bundle(parser: argparse.ArgumentParser) -> None:
    """--bundle: read the models from a bundle (export bundle) instead of --models-dir; verified first."""
    parser.add_argument(
        "--bundle", default=None, metavar="FILE.zip", help="read the models from this bundle instead of --models-dir"
    )


def add_option(parser: argparse.ArgumentParser, f: Field, **overrides: Any) -> None:
    """The command-line option of a config field (see mrnet.options), its default None so an explicit value shows.

    A bool field is a switch that sets the opposite of its default.
    """
    kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": help_of(f)}
    if value_type(f) is bool:
        kwargs.update(action="store_const", const=not default_of(f))
    else:
        kwargs.update(type=None if value_type(f) is str else value_type(f), choices=f.metadata["choices"])
    parser.add_argument(*flags_of(f), **{**kwargs, **overrides})


def add_training_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by train_plane and train_all, from TrainConfig's fields; each command adds task and plane."""
    for f in options_of(TrainConfig):
        if not f.metadata["per_model"]:
            add_option(parser, f)


def config_from_args(config_class: type, args: argparse.Namespace, **overrides: Any):
    """A command's config dataclass from the parsed options of the same names (the option names are the fields')."""
    from dataclasses import fields

    values = {f.name: getattr(args, f.name) for f in fields(config_class) if hasattr(args, f.name)}
    return config_class(**{**values, **overrides})


def training_config_from_args(args: argparse.Namespace, **overrides: Any):
    """A TrainConfig from parsed options; also the names the user set explicitly."""
    from dataclasses import fields

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    values.update(overrides)
    explicit = set(values)
    return TrainConfig(**values), explicit


def add_ensemble_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--fit-on",
        default=None,
        choices=FIT_ON,
        help="what the stacker learns from: tune (the CNNs' probabilities on the tuning exams, which they did "
        "not train on; the default when the models folder has a tuning split); train (the paper's protocol: "
        "the exams the CNNs trained on; the default without a tuning split); valid-cv (cross-validated on valid)",
    )
    parser.add_argument(
        "--folds", type=int, default=5, help="folds for --fit-on valid-cv and out-of-fold thresholds (default 5)"
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    """--threads for the commands whose options are not TrainConfig's (training commands get it from there)."""
    parser.add_argument("--threads", default="auto", help=THREADS_HELP)


def start_threads(requested: str, workers: int = 1):
    """The thread policy (mrnet.threads), applied before any parallel work; the command's first line says it."""
    from ..threads import apply_threads, plan_threads

    plan = apply_threads(plan_threads(requested or "auto", workers))
    print(f"cpu ({plan.describe()})", flush=True)
    return plan


def add_tasks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS, action=Unique)


PLANES_HELP = "the planes the data has and the models use, e.g. sagittal for a KneeMRI cohort (default: all three)"


def add_planes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--planes", nargs="+", default=list(PLANES), choices=PLANES, action=Unique, help=PLANES_HELP)


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for a table, or n/a where it is undefined."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def print_auc_table(table) -> None:
    """The AUC table as console text: what chose what, a row per task, the mean over tasks, the ensemble against
    its best plane (n/a where DeLong's test is undefined: too few exams of a class, or no variance)."""
    columns = [*(p for p in PLANES if p in table), "ensemble"]  # the planes the stacker combines
    print(f"\nAUC on the valid split ({auc_table_provenance(table)})")
    header = f"{'task':<10}" + "".join(f"{c:>10}" for c in columns) + f"  {'ensemble vs best plane':<30}"
    print(header)
    print("-" * len(header))
    for row in table.to_dict("records"):
        cells = "".join(f"{fmt(row[c]):>10}" for c in columns)
        print(f"{row['task']:<10}{cells}  {versus_best_plane(row)}")
    if len(table) > 1:
        mean = table[columns].mean(skipna=False)  # n/a when a task's AUC is undefined, as evaluate reports it
        print(f"{'mean':<10}" + "".join(f"{fmt(mean[c]):>10}" for c in columns))
    print()


def auc_table_provenance(table) -> str:
    """Which split chose the planes' epochs and what the stacker learned from: the valid figures are held-out only
    where valid chose nothing (tables saved before `selected_on` was recorded say only what the stacker did)."""
    fit_on, scored = table["ensemble_fit_on"].iloc[0], table["ensemble_scored"].iloc[0]
    if "selected_on" not in table:
        return f"ensemble fitted on: {fit_on}; its valid figures are {scored}"
    selected = sorted(set(table["selected_on"]))
    scored_all = sorted(set(table["ensemble_scored"]))
    text = f"epochs chosen on: {'; '.join(selected)}; ensemble fitted on: {fit_on}"
    if any("valid" in s for s in selected):
        return text + "; valid chose plane epochs, so these figures are optimistic, not those of unseen exams"
    return text + f"; the ensemble's valid figures are {', '.join(scored_all)}"


def versus_best_plane(row: dict) -> str:
    difference, p = row["ensemble_minus_best"], row["p_delong"]
    if math.isnan(difference):
        return f"{row['best_plane']}: n/a (one class)"
    if math.isnan(p):
        return f"{difference:+.4f} against {row['best_plane']} (DeLong p n/a: too few exams or no variance)"
    verdict = "beats" if difference > 0 else ("ties" if difference == 0 else "below")
    return f"{verdict} {row['best_plane']}: {difference:+.4f} (DeLong p {fmt(p, 3)})"

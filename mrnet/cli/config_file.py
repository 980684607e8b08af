"""--config FILE: a command's options from a JSON (or TOML) file, such as a run's saved config.json.

The file's values become the parser's defaults, so options given on the command line win. Keys
are the options' names as saved (`lr_factor`, `models_dir`); an unknown key or a bad value is
refused before any work, every problem in one message naming the key and the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import MRNetError
from ..options import may_be_none, options_of, rules_of, value_type
from .common import ArgumentParser

CONFIG_HELP = (
    "read options from a JSON (or TOML) file, e.g. a run's saved config.json; options given on the command line win"
)


class ConfigFileParser(ArgumentParser):
    """An ArgumentParser with --config FILE, whose values become the defaults of this parse.

    `config_class` (a dataclass of mrnet.options fields) checks the values of its options by their
    own rules; `adapt` may turn the keys of another command's saved config into this command's.
    """

    def __init__(
        self,
        *args: Any,
        config_class: type | None = None,
        adapt: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        config_help: str = CONFIG_HELP,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.config_class = config_class
        self.adapt = adapt
        self.add_argument("--config", metavar="FILE", default=None, help=config_help)

    def parse_known_args(  # type: ignore[override]  # the same call, without argparse's overloads
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        path = _config_path(sys.argv[1:] if args is None else list(args))
        if path is None:
            return super().parse_known_args(args, namespace)
        values = read_config_file(Path(path), self)
        actions = [a for a in self._actions if a.dest in values]
        saved = [(a, a.default, a.required) for a in actions]
        try:
            for action in actions:  # this parse only: the parser stays as it was built
                action.default, action.required = values[action.dest], False
            return super().parse_known_args(args, namespace)
        finally:
            for action, default, required in saved:
                action.default, action.required = default, required


def _config_path(args: list[str]) -> str | None:
    """The --config value, read before parsing (a missing one is left for argparse to report)."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and i + 1 < len(args):
            return args[i + 1]
    return None


def load(path: Path) -> dict[str, Any]:
    """The file's table of options: JSON, or TOML by its .toml suffix."""
    try:
        if path.suffix == ".toml":
            import tomllib  # Python 3.11+

            values = tomllib.loads(path.read_text())
        else:
            values = json.loads(path.read_text())
    except ModuleNotFoundError:
        raise MRNetError(f"--config {path}: TOML needs Python 3.11 or later; write the file as JSON") from None
    except OSError as err:
        raise MRNetError(f"--config {path}: cannot read it ({err.strerror or err})") from None
    except ValueError as err:  # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise MRNetError(f"--config {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({err})") from None
    if not isinstance(values, dict):
        raise MRNetError(f"--config {path}: expected a table of option names and values, got {type(values).__name__}")
    return values


def read_config_file(path: Path, parser: ConfigFileParser) -> dict[str, Any]:
    """The file's values by option name, each checked as its option would check it on the command line."""
    values = load(path)
    if parser.adapt is not None:
        values = parser.adapt(dict(values))
    actions = {a.dest: a for a in parser._actions if a.dest not in (argparse.SUPPRESS, "help", "config")}
    fields = {f.name: f for f in options_of(parser.config_class)} if parser.config_class else {}
    problems, checked = [], {}
    for key, value in values.items():
        if key not in actions:
            problems.append(f"{key}: not an option of {parser.prog} (see its --help)")
            continue
        problem = _value_problem(actions[key], fields.get(key), value)
        if problem:
            problems.append(f"{key} {value!r}: {problem}")
        elif value is not None:
            checked[key] = float(value) if actions[key].type is float else value
            if key in fields:
                problems += [message for ok, message in rules_of(fields[key], key, checked[key]) if not ok]
    if problems:
        raise MRNetError(f"--config {path}: " + "; ".join(problems))
    return checked


def _value_problem(action: argparse.Action, field: Any, value: Any) -> str | None:
    """What is wrong with `value` for `action` (its type, its choices), or None."""
    if value is None:
        nullable = may_be_none(field) if field is not None else action.default is None
        return None if nullable else "needs a value"
    if isinstance(action, (argparse._StoreConstAction, argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return None if isinstance(value, bool) else "must be true or false"
    items = value if action.nargs in ("+", "*") else [value]
    if action.nargs in ("+", "*") and not (isinstance(value, list) and value):
        return "must be a list of values"
    kind: type = action.type if isinstance(action.type, type) else value_type(field) if field is not None else str
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float) if kind is float else kind):
            return {int: "must be a whole number", float: "must be a number"}.get(kind, "must be text")
        if action.choices is not None and item not in action.choices:
            return f"choose one of {', '.join(map(str, action.choices))}"
    return None

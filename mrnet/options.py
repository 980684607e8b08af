"""Options written once: a config dataclass's fields carry their help, choices, range and role.

The command line (mrnet.cli.common), the checks before any work, what a resumed run keeps and
the command lines handed to worker processes are all read from these fields, so an option is
spelled in one place. No torch here: `--help` reads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import MISSING, Field, field, fields
from typing import Any

from .errors import one_of

# The role of an option when a run is resumed or a finished model is reused.
RECIPE = "recipe"  # changes what is learned: a resumed run keeps the saved value, a different one is refused
LENGTH = "length"  # how long training goes: a resumed run keeps the saved value unless given again
RUN = "run"  # where or how to run: follows the command line
ROLES = (RECIPE, LENGTH, RUN)

# A range check: (the option's name as the user wrote it, its value) -> (passes, message).
Rule = Callable[[str, Any], tuple[bool, str]]


def option(
    default: Any,
    help: str | None = None,
    *,
    role: str,
    choices: Iterable[str] | None = None,
    check: Rule | None = None,
    aliases: tuple[str, ...] = (),
    per_model: bool = False,
) -> Any:
    """A config field that is also a command-line option.

    `help` may name `{default}`. A bool field is a switch: `--no-NAME` when it defaults to on,
    `--NAME` when off. `per_model` options (task, plane) are set by each command its own way.
    """
    if role not in ROLES:
        raise ValueError(f"role {role!r}: one of {ROLES}")
    metadata = {
        "help": help,
        "role": role,
        "choices": tuple(choices) if choices is not None else None,
        "check": check,
        "aliases": aliases,
        "per_model": per_model,
    }
    return field(default=default, metadata=metadata)


def at_least(low: float) -> Rule:
    return lambda name, value: (value >= low, f"{name} {value}: must be at least {low}")


def finite_above(low: float, *, strictly: bool = False) -> Rule:
    """A finite number >= low (> low when `strictly`); inf and NaN fail."""

    def rule(name: str, value: Any) -> tuple[bool, str]:
        ok = math.isfinite(value) and (value > low if strictly else value >= low)
        return ok, f"{name} {value}: must be a finite number {'above' if strictly else 'of at least'} {low:g}"

    return rule


def between(low: float, high: float, *, exclusive: bool = False) -> Rule:
    def rule(name: str, value: Any) -> tuple[bool, str]:
        ok = low < value < high if exclusive else low <= value <= high
        return ok, f"{name} {value}: must be between {low} and {high}" + (" (exclusive)" if exclusive else "")

    return rule


def options_of(config_class: type) -> list[Field]:
    """The fields of `config_class` that are options, in the order they are declared."""
    return [f for f in fields(config_class) if "role" in f.metadata]


def names_with_role(config_class: type, role: str) -> tuple[str, ...]:
    return tuple(f.name for f in options_of(config_class) if f.metadata["role"] == role)


def option_field(config_class: type, name: str) -> Field:
    return next(f for f in options_of(config_class) if f.name == name)


def default_of(f: Field) -> Any:
    return f.default if f.default is not MISSING else None


def value_type(f: Field) -> type:
    """int, float, str or bool, from the annotation (`int | None` gives int)."""
    annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    base = annotation.replace(" | None", "").replace("None | ", "")
    return {"int": int, "float": float, "str": str, "bool": bool}[base]


def may_be_none(f: Field) -> bool:
    return "None" in (f.type if isinstance(f.type, str) else str(f.type))


def flags_of(f: Field) -> tuple[str, ...]:
    """The option's spellings: --name-with-dashes (a switch: --no-name when on by default), then its aliases."""
    flag = "--" + f.name.replace("_", "-")
    if value_type(f) is bool and default_of(f):
        flag = "--no-" + flag[2:]
    return (flag, *f.metadata["aliases"])


def help_of(f: Field) -> str | None:
    text = f.metadata["help"]
    return text.format(default=default_of(f)) if text else text


def rules_of(f: Field, name: str, value: Any) -> list[tuple[bool, str]]:
    """The field's own checks (its choices, its range) on `value`, the option named `name` in the messages."""
    found = []
    if f.metadata["choices"] is not None:
        found.append(one_of(name, value, f.metadata["choices"]))
    if f.metadata["check"] is not None:
        found.append(f.metadata["check"](name, value))
    return found


def rules(config: Any) -> list[tuple[bool, str]]:
    """Each option's own checks on the values of `config`, named by flag, for errors.check_options.

    None passes: it means the default.
    """
    found = []
    for f in options_of(type(config)):
        value = getattr(config, f.name)
        if value is not None:
            found += rules_of(f, flags_of(f)[0], value)
    return found


def command_line(config: Any, names: Iterable[str]) -> list[str]:
    """The options that set `names` to their values in `config` (a switch is written only when it changes its field)."""
    argv: list[str] = []
    for name in names:
        f = option_field(type(config), name)
        value = getattr(config, name)
        if value_type(f) is bool:
            argv += [flags_of(f)[0]] if value != default_of(f) else []
        elif value is not None:
            argv += [flags_of(f)[0], str(value)]
    return argv

"""User-facing errors: problems a person can fix, reported without a traceback."""

from __future__ import annotations

from collections.abc import Sequence

MAX_LISTED_PROBLEMS = 40
# What a stopped training command says, in this process or in a sweep's worker (its log).
INTERRUPTED = "\ninterrupted: completed epochs are saved; continue with --resume"


class MRNetError(Exception):
    """An error caused by input, options or the environment, not by a bug.

    Commands print its message and exit with status 2, so a user sees what to fix
    instead of a Python traceback.
    """


class DataError(MRNetError):
    """One or more problems with a dataset, reported together so one run shows them all."""

    def __init__(self, where: str, problems: Sequence[str]):
        self.where = where
        self.problems = list(problems)
        super().__init__(format_problems(where, self.problems))


class CheckpointError(MRNetError):
    """A checkpoint that is missing, unreadable, or belongs to another model."""


def format_problems(where: str, problems: Sequence[str]) -> str:
    """One readable block: a count, then one problem per line (long lists are cut)."""
    count = len(problems)
    noun = "problem" if count == 1 else "problems"
    lines = [f"{where}: {count} {noun} found, nothing was trained or written:"]
    lines += [f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS]]
    if count > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {count - MAX_LISTED_PROBLEMS} more of the same kinds")
    lines.append("The manual's page 'Bad input and reliability' (docs/reliability.md) says what each check expects.")
    return "\n".join(lines)


def one_of(option: str, value: object, allowed: Sequence[str]) -> tuple[bool, str]:
    """A rule for check_options: `value` must be one of `allowed`."""
    return value in allowed, f"{option} {value}: choose one of {', '.join(allowed)}"


def at_least(option: str, value: float | None, low: float) -> tuple[bool, str]:
    """A rule for check_options: `value` (None passes, meaning 'the default') must be >= low (NaN fails)."""
    return value is None or value >= low, f"{option} {value}: must be at least {low}"


def finite_above(option: str, value: float, low: float, *, strictly: bool = False) -> tuple[bool, str]:
    """A rule for check_options: a finite number >= low (> low when `strictly`); inf and NaN fail."""
    import math

    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value > low if strictly else value >= low)
    return ok, f"{option} {value}: must be a finite number {'above' if strictly else 'of at least'} {low:g}"


SEED_LIMIT = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit


def seed_rule(value: int) -> tuple[bool, str]:
    """A rule for check_options: a seed every library accepts."""
    return 0 <= value <= SEED_LIMIT, f"--seed {value}: must be between 0 and {SEED_LIMIT}"


def check_options(rules: Sequence[tuple[bool, str]]) -> None:
    """Raise one MRNetError naming every option whose rule fails, so a user fixes them all at once."""
    problems = [message for ok, message in rules if not ok]
    if problems:
        raise MRNetError("; ".join(problems))

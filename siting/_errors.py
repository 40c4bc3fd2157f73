"""One exception hierarchy for every error siting raises on purpose.

Callers catch ``SitingError`` for all of ours, or the usual built-in (``ValueError``,
``RuntimeError``) each subclass also derives from. A message names the file, the
field or layer, the offending value and the fix; ``hints`` add "hint:" lines.
"""

from __future__ import annotations


class SitingError(Exception):
    """Base for every error siting raises on purpose; the CLI prints it as one line."""

    exit_code = 2

    def __init__(self, message: str, *, hints: tuple[str, ...] | list[str] = ()) -> None:
        super().__init__(message)
        self.hints = tuple(hints)


class ScenarioError(SitingError, ValueError):
    """The scenario file breaks the schema (syntax, unknown key, wrong type, bad value)."""


class DataError(SitingError, ValueError):
    """A data file the scenario points to is missing, unreadable or inconsistent."""


class RuleError(SitingError, ValueError):
    """A rule set or rule override is unknown or inconsistent."""


class InfeasibleError(SitingError, RuntimeError):
    """No plan satisfies the rules with the given candidates; the message gives the numbers."""

    exit_code = 3


class SolverError(SitingError, RuntimeError):
    """The MILP solver failed, or found no solution within its limits."""

    exit_code = 3

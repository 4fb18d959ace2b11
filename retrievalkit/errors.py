"""Typed errors that the CLI maps to exit codes.

Library code raises these for *expected* failures (bad files, bad options, missing
packages); anything else is a bug and surfaces as exit code 1.
"""

from __future__ import annotations


class RkitError(Exception):
    """Base class of expected failures. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class UsageError(RkitError):
    """An option or argument is invalid (exit code 2)."""

    exit_code = 2


class BadInputError(RkitError):
    """An input file or its content is unusable (exit code 3). Name the file in the message."""

    exit_code = 3


class MissingDependencyError(RkitError):
    """A package or device that the request needs is not available (exit code 4)."""

    exit_code = 4


class RkitWarning(UserWarning):
    """An input was accepted after a fix (e.g. vectors re-normalised) or partly skipped: the CLI prints it as one
    ``warning:`` line on stderr. Library callers see an ordinary :mod:`warnings` warning."""


class MissingInputError(BadInputError):
    """An input path named on the command line does not exist (exit code 2, like the parser's own check).

    One rule for every command: a path that is not there is a command-line mistake (2), whether the parser or the
    library notices it; a file that is there but unusable is bad input data (3).
    """

    exit_code = 2

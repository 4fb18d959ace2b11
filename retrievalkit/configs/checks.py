"""Range checks of the stage configs' settings, shared by the library and the CLI.

Each stage config (``GlobalExtractConfig``, ``DiffusionConfig``, ...) checks its values in ``__post_init__`` with
these helpers, so ``rkit CMD --p 0`` and ``extract_global(..., p=0)`` fail alike with a :class:`UsageError` that
names the command-line option (the field ``top_k`` is the option ``--top-k``).
"""

from __future__ import annotations

from collections.abc import Iterable

from retrievalkit.errors import UsageError


def option_name(field: str) -> str:
    """The command-line spelling of a config field: ``top_k`` → ``--top-k``."""
    return "--" + field.replace("_", "-")


def at_least(field: str, value: float | None, low: float) -> None:
    """``value >= low`` (None passes: "chosen automatically")."""
    if value is not None and value < low:
        raise UsageError(f"{option_name(field)} {value}: must be at least {low:g}")


def positive(field: str, value: float | None) -> None:
    """``value > 0`` (None passes)."""
    if value is not None and not value > 0:
        raise UsageError(f"{option_name(field)} {value}: must be > 0")


def within(field: str, value: float | None, low: float, high: float, *, open_low: bool = False,
           open_high: bool = False) -> None:
    """``value`` in [low, high] (ends open when asked; None passes)."""
    if value is None:
        return
    ok_low = value > low if open_low else value >= low
    ok_high = value < high if open_high else value <= high
    if not (ok_low and ok_high):
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise UsageError(f"{option_name(field)} {value}: must lie in {interval}")


def one_of(field: str, value: str | None, choices: Iterable[str]) -> None:
    """``value`` is one of ``choices`` (None passes)."""
    choices = list(choices)
    if value is not None and value not in choices:
        raise UsageError(f"{option_name(field)} {value!r}: expected one of {', '.join(choices)}")


def stage_config(config, cls: type):
    """A stage's ``config`` argument: None → ``cls()`` (the defaults); otherwise it must be a ``cls``."""
    if config is None:
        return cls()
    if not isinstance(config, cls):
        raise TypeError(f"config: expected {cls.__name__} (or None for the defaults), got {type(config).__name__}")
    return config

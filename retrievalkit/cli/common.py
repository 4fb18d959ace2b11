"""What every subcommand shares: error → exit-code mapping, progress bars on stderr, devices."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import typer

from retrievalkit.devices import resolve_device as resolve_device  # re-exported: every command resolves --device here
from retrievalkit.errors import RkitError, UsageError


def _err_console():
    """rich's console on stderr, made (and rich imported) on first use: a quiet run never loads rich."""
    console = globals().get("err_console")
    if console is None:
        from rich.console import Console

        console = globals()["err_console"] = Console(stderr=True, highlight=False)
    return console


def _stderr_is_terminal() -> bool:
    """``err_console.is_terminal``, without importing rich where the answer is plainly no (stderr is no terminal
    and none of the variables rich reads to override that is set)."""
    if "err_console" not in globals() and not any(v in os.environ for v in ("TTY_COMPATIBLE", "FORCE_COLOR")):
        isatty = getattr(sys.stderr, "isatty", None)
        try:
            if isatty is None or not isatty():
                return False
        except ValueError:  # closed stream
            return False
    return _err_console().is_terminal


def __getattr__(name: str):
    if name == "err_console":  # ``from retrievalkit.cli.common import err_console``
        return _err_console()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class State:
    quiet: bool = False
    interrupted: bool = False  # the Ctrl-C line was printed
    threads: int | None = None  # rkit --threads N (torch, and COLMAP in sfm-mine)


state = State()


def fail(message: str, code: int) -> None:
    _err_console().print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


def interrupted() -> None:
    """The one line printed on Ctrl-C (exit code 130)."""
    if not state.interrupted:
        state.interrupted = True
        sys.stderr.write("error: interrupted; outputs were left untouched (extract: rerun with --resume to "
                         "continue)\n")
        sys.stderr.flush()


def handle_errors(fn: Callable) -> Callable:
    """Turn expected failures into one clean line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RkitError as e:
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            interrupted()
            raise typer.Exit(130) from None
        except MemoryError:
            fail("out of memory; lower --batch-size or process in shards (--shard I/N)", 1)

    return wrapper


def _bars():
    """rich's progress display on stderr (rich imported here: only a run that draws bars loads it)."""
    from rich import progress as p

    return p.Progress(p.TextColumn("[bold]{task.description}"), p.BarColumn(), p.MofNCompleteColumn(),
                      p.TimeElapsedColumn(), p.TimeRemainingColumn(), console=_err_console(), transient=False)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield an ``advance(n)`` callback drawing a rich bar on stderr (silent with -q or off a terminal)."""
    enabled = not state.quiet and _stderr_is_terminal()
    if not enabled:
        yield lambda n=1: None
        return
    with _bars() as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


@contextmanager
def phase_bars() -> Iterator[tuple[Callable[[int], None], Callable[[str, int], None]]]:
    """Yield ``(advance(n), on_phase(description, total))`` for a stage with several phases: each phase gets
    its own bar on stderr (silent with -q or off a terminal); ``advance`` moves the current one."""
    if state.quiet or not _stderr_is_terminal():
        yield (lambda n=1: None), (lambda description, total: None)
        return
    with _bars() as prog:
        current: list = []

        def on_phase(description: str, total: int) -> None:
            current[:] = [prog.add_task(description, total=total)]

        def advance(n: int = 1) -> None:
            if current:
                prog.advance(current[0], n)

        yield advance, on_phase


def info(message: str) -> None:
    if not state.quiet:
        _err_console().print(message, markup=True, soft_wrap=True)


def parse_floats(text: str | None, option: str) -> list[float] | None:
    """Parse a comma-separated list like ``1,0.707,0.5`` (also accepts ``1/sqrt2``-free plain floats)."""
    if text is None:
        return None
    try:
        vals = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected comma-separated numbers, e.g. 1,0.7071,0.5") from None
    if not vals or any(v <= 0 for v in vals):
        raise UsageError(f"{option} {text!r}: expected positive numbers")
    return vals


def echo_path(path) -> None:
    """stdout carries only data: the output path, so commands compose."""
    sys.stdout.write(f"{path}\n")
    sys.stdout.flush()


def default_command_group(default: str):
    """A typer group class that runs the sub-command ``default`` when the first argument names none.

    So ``rkit whiten FEATS.h5 -o w.h5`` means ``rkit whiten learn FEATS.h5 -o w.h5`` while
    ``rkit whiten apply ...`` still reaches ``apply``. Use as ``typer.Typer(cls=default_command_group("learn"))``.
    """
    from typer.core import TyperGroup

    class DefaultCommandGroup(TyperGroup):
        def parse_args(self, ctx, args):
            if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
                args = [default, *args]
            return super().parse_args(ctx, args)

    return DefaultCommandGroup

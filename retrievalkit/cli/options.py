"""The options every subcommand shares, spelled once (the naming table at the end of docs/DESIGN.md).

Three mechanisms keep the command line and the library saying the same thing:

- **Shared option types.** ``top_k("...")`` and friends return the ``Annotated`` type of an option with its one
  spelling (``-k/--top-k``); every command builds its signature from them.
- **Defaults live in the stage's config.** Options default to ``None`` ("not given") and
  :func:`config_from_options` lets the stage's config dataclass fill the rest, so ``rkit CMD`` with no options and
  the library function with no arguments do the same thing.
- **Nothing is silently ignored.** :func:`refuse_inapplicable` rejects an option given for a mode that does not
  use it, and :func:`renaming_command` turns an old spelling into one line naming the new one (exit code 2).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from retrievalkit.errors import UsageError

C = TypeVar("C")


# ------------------------------------------------------------------------------------------- mechanisms


def config_from_options(cls: type[C], **options: Any) -> C:
    """``cls(**options)`` without the options that were not given (None), so the config's defaults fill them.

    Every name must be a field of ``cls``; the config's ``__post_init__`` checks the values' ranges.
    """
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    return cls(**{k: v for k, v in options.items() if v is not None})


def refuse_inapplicable(context: str, given: Mapping[str, Any]) -> None:
    """Raise a UsageError for the first option of ``given`` (spelling → value) that was given (not None).

    ``context`` completes the sentence "--X does not apply to ...", e.g. ``"extract --local"`` or
    ``"--method cg (it is an option of --method truncated)"``.
    """
    for name, value in given.items():
        if value is not None:
            raise UsageError(f"{name} does not apply to {context}")


def renaming_command(renamed: Mapping[str, str]):
    """A typer command class that refuses old option spellings with one line naming the new one.

    ``renamed`` maps an old spelling to the new spelling (``{"--topk": "-k/--top-k"}``) or, when the value does not
    start with ``-``, to a sentence (``{"--threads": "give it to rkit: rkit --threads N sfm-mine ..."}``).
    Use as ``app.command("name", cls=renaming_command({...}))``.
    """
    from typer._click.exceptions import UsageError as ClickUsageError
    from typer.core import TyperCommand

    table = dict(renamed)

    class RenamingCommand(TyperCommand):
        renamed_options = table

        def parse_args(self, ctx, args):
            for arg in args:
                if arg == "--":
                    break
                old = arg.split("=", 1)[0] if arg.startswith("--") else arg
                if old in table:
                    new = table[old]
                    msg = f"{old} was renamed {new}" if new.startswith("-") else f"{old}: {new}"
                    raise ClickUsageError(msg, ctx)
            return super().parse_args(ctx, args)

    return RenamingCommand


def command(app: typer.Typer, name: str, fn, renamed: Mapping[str, str] | None = None) -> None:
    """Register ``fn`` as ``name`` on ``app``, refusing the ``renamed`` old spellings."""
    app.command(name, cls=renaming_command(renamed or {}))(fn)


def default_text(value: Any) -> str:
    """How a config default reads in ``--help``."""
    if value is None:
        return "automatic"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def default_of(cls: type, field: str) -> str:
    """``"(default X)"`` from the config's field default, so ``--help`` cannot drift from the library."""
    for f in dataclasses.fields(cls):
        if f.name == field:
            if f.default is not dataclasses.MISSING:
                return f"(default {default_text(f.default)})"
            if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                return f"(default {default_text(f.default_factory())})"  # type: ignore[misc]
    raise KeyError(f"{cls.__name__}.{field}")


# --------------------------------------------------------------------------------- shared option types
# Each returns the Annotated type of one idea's option with its one spelling; ``help`` says what it means in the
# command at hand. Defaults are None: the stage's config holds the value used when the option is not given.


def output(help: str):
    """``-o/--output``: always the file the stage writes."""
    return Annotated[Path, typer.Option("-o", "--output", help=help)]


def queries(help: str, *, dir_okay: bool = False, required: bool = True):
    """``--queries``: query features, locals or images."""
    t = Path if required else Path | None
    return Annotated[t, typer.Option("--queries", exists=True, dir_okay=dir_okay, help=help)]


def database(help: str, *, dir_okay: bool = False, required: bool = True):
    """``--database``: database features, locals, index or images."""
    t = Path if required else Path | None
    return Annotated[t, typer.Option("--database", exists=True, dir_okay=dir_okay, help=help)]


def input_file(help: str):
    """A stage's positional input file (must exist)."""
    return Annotated[Path, typer.Argument(exists=True, dir_okay=False, help=help)]


def top_k(help: str):
    """``-k/--top-k``: results kept per query (what a ranks file holds)."""
    return Annotated[int | None, typer.Option("-k", "--top-k", help=help)]


def shortlist(help: str):
    """``--shortlist``: the top of each list that is re-ranked or verified."""
    return Annotated[int | None, typer.Option("--shortlist", help=help)]


def batch_size(help: str):
    """``--batch-size``: images (or tuples) per forward pass of the network."""
    return Annotated[int | None, typer.Option("--batch-size", help=help)]


def block_size(help: str):
    """``--block-size``: rows per block of a blocked computation (memory of search, graph, solver)."""
    return Annotated[int | None, typer.Option("--block-size", help=help)]


def iters(help: str):
    return Annotated[int | None, typer.Option("--iters", help=help)]


def seed(help: str):
    return Annotated[int | None, typer.Option("--seed", help=help)]


def shard(help: str):
    return Annotated[str | None, typer.Option("--shard", help=help)]


def graph(help: str):
    return Annotated[Path | None, typer.Option("--graph", exists=True, dir_okay=False, help=help)]


def graph_k(help: str):
    return Annotated[int | None, typer.Option("--graph-k", help=help)]


def mutual(help: str):
    return Annotated[bool | None, typer.Option("--mutual/--no-mutual", help=help)]


def dim(help: str):
    return Annotated[int | None, typer.Option("--dim", help=help)]


def shrinkage(help: str):
    return Annotated[float | None, typer.Option("--shrinkage", help=help)]


def whitening(help: str):
    return Annotated[Path | None, typer.Option("--whitening", exists=True, dir_okay=False, help=help)]


def images(help: str):
    return Annotated[Path | None, typer.Option("--images", exists=True, file_okay=False, help=help)]


def method(help: str):
    return Annotated[str | None, typer.Option("--method", help=help)]


def model(help: str):
    return Annotated[str | None, typer.Option("--model", "-m", help=help)]


def weights(help: str = "Weights file for the backbone (torchvision/cirtorch)."):
    return Annotated[Path | None, typer.Option("--weights", exists=True, dir_okay=False, help=help)]


def size(help: str):
    return Annotated[int | None, typer.Option("--size", help=help)]


def scales(help: str):
    return Annotated[str | None, typer.Option("--scales", help=help)]


def workers(help: str = "Image decoding worker processes (default 2)."):
    return Annotated[int | None, typer.Option("--workers", help=help)]


def resume(help: str):
    return Annotated[bool | None, typer.Option("--resume", help=help)]


Device = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda[:N] (default auto).")]


def pick(spelling: str, named: Path | None, positional: Path | None) -> Path:
    """The file given as ``spelling`` or, in the older form, positionally; exactly one of the two."""
    if named is not None and positional is not None:
        raise UsageError(f"give the file once: {spelling} {named} or positionally, not both")
    if named is None and positional is None:
        raise UsageError(f"missing {spelling} FILE")
    return named if named is not None else positional  # type: ignore[return-value]

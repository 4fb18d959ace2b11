"""The ``rkit`` command: one sub-command per pipeline stage."""

from __future__ import annotations

import importlib
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from retrievalkit import __version__
from retrievalkit.cli.common import interrupted, state

app = typer.Typer(
    name="rkit",
    help="retrievalkit: instance-level image retrieval and copy detection as composable stages.\n\n"
    "Stages exchange HDF5 files:  rkit extract images/ -o feats.h5  →  rkit index search --database db.h5 "
    "--queries q.h5 -o ranks.h5"
    "  →  rkit evaluate ranks.h5 --gnd gnd.json",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        typer.echo(f"rkit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress bars or tables on stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    threads: Annotated[int | None, typer.Option(
        "--threads", help="CPU threads for torch, faiss and COLMAP (default: their choice, COLMAP 2; 1 is "
                     "fastest on busy machines).")] = None,
    max_pixels: Annotated[int | None, typer.Option(
        "--max-pixels", help="Largest image decoded, in pixels (width × height, read from the header first); "
        "larger images are listed as failed. Default 178956970 (Pillow's limit).")] = None,
    allow_root: Annotated[list[Path] | None, typer.Option(
        "--allow-root", help="A folder besides the image folder that image names (from --list, --gnd, tuples) and "
        "links may lead to; repeatable. Default: none, names stay inside the image folder.")] = None,
):
    state.quiet = quiet
    state.threads = threads
    from retrievalkit.images.policy import DEFAULT_MAX_PIXELS, set_image_policy

    for d in allow_root or []:
        if not d.is_dir():
            raise typer.BadParameter(f"{d}: not a folder", param_hint="--allow-root")
    if max_pixels is not None and max_pixels < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--max-pixels")
    set_image_policy(max_pixels=max_pixels or DEFAULT_MAX_PIXELS, allow_roots=allow_root or [])  # each run afresh
    if threads is not None:
        if threads < 1:
            raise typer.BadParameter("must be at least 1", param_hint="--threads")
        _torch_threads(threads)


def _torch_threads(n: int) -> None:
    """``torch.set_num_threads(n)`` and ``faiss.omp_set_num_threads(n)``: now for a library already loaded, else
    right after a command first imports it, so commands that run no torch code (index search, evaluate, ...)
    never load torch."""
    import importlib.abc
    import importlib.util

    setters = {"torch": lambda m: m.set_num_threads(n), "faiss": lambda m: m.omp_set_num_threads(n)}
    for name in list(setters):
        if name in sys.modules:
            setters.pop(name)(sys.modules[name])
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "AfterImportSetThreads"]  # one per run
    if not setters:
        return

    class AfterImportSetThreads(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in setters:
                return None
            setter = setters.pop(name)
            if not setters:
                sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)  # by the finders that follow (this one skips it now)
            if spec is not None and spec.loader is not None:
                exec_module = spec.loader.exec_module

                def exec_then_set(module):
                    exec_module(module)
                    setter(module)

                spec.loader.exec_module = exec_then_set
            return spec

    sys.meta_path.insert(0, AfterImportSetThreads())


def _register() -> None:
    # Each module adds its command(s) to ``app``; import order is the order in --help.
    for mod in ("extract", "whiten", "index", "diffuse", "propagate", "evaluate", "sfm_mine", "manifold_mine",
                "train", "verify", "copy_detect", "show"):
        try:
            m = importlib.import_module(f"retrievalkit.cli.{mod}")
        except ModuleNotFoundError as e:
            if e.name == f"retrievalkit.cli.{mod}":
                continue  # stage not built yet: only working sub-commands are registered
            raise
        m.register(app)


_register()


def _usage_error_types() -> tuple[type, ...]:
    types = []
    for mod in ("typer._click.exceptions", "click.exceptions"):  # typer vendors click from 0.16 on
        try:
            types.append(importlib.import_module(mod).UsageError)
        except (ImportError, AttributeError):
            pass
    return tuple(types)


def main() -> None:
    """Entry point of the ``rkit`` script: usage errors (a missing file, a bad option value) are one line on
    stderr and exit code 2, like every other error of the tool, instead of a framed usage block."""
    usage_errors = _usage_error_types()
    _print_warnings()
    try:
        code = app(standalone_mode=False)
    except usage_errors as e:
        ctx = getattr(e, "ctx", None)
        if type(e).__name__ == "NoArgsIsHelpError":  # bare ``rkit`` or ``rkit index``: the help is the answer
            e.show()
            sys.exit(e.exit_code)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
        typer.echo(f"error: {where}{e.format_message()}{hint}", err=True)
        sys.exit(e.exit_code)
    except (typer.Abort, EOFError):
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        code = 130
    if code == 130 and not state.interrupted:  # Ctrl-C outside a command's own handler (typer turns it into 130)
        interrupted()
    sys.exit(code if isinstance(code, int) else 0)


def _print_warnings() -> None:
    """rkit's own warnings (:class:`~retrievalkit.errors.RkitWarning`) as one ``warning:`` line on stderr."""
    from retrievalkit.errors import RkitWarning

    default = warnings.showwarning

    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RkitWarning):
            if str(message) not in shown:  # a stage may look at the same input twice: say it once
                shown.add(str(message))
                sys.stderr.write(f"warning: {message}\n")
            return
        default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    warnings.simplefilter("always", RkitWarning)


if __name__ == "__main__":
    main()

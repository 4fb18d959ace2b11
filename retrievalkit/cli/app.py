"""The ``rkit`` command: one sub-command per pipeline stage."""

from __future__ import annotations

import copy
import importlib
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer

from retrievalkit import __version__
from retrievalkit.cli import coercion
from retrievalkit.cli.common import interrupted, state

coercion.install()  # option values without pydantic (start-up time); typer's own converter where unsure

HELP = ("retrievalkit: instance-level image retrieval and copy detection as composable stages.\n\n"
        "Stages exchange HDF5 files:  rkit extract images/ -o feats.h5  →  rkit index search --database db.h5 "
        "--queries q.h5 -o ranks.h5"
        "  →  rkit evaluate ranks.h5 --gnd gnd.json")

# Each top-level command -> the module ``retrievalkit/cli/<module>.py`` whose ``register(app)`` adds it, in the
# order of --help. ``rkit CMD ...`` builds only CMD (``build_app``; tests/cli/test_imports.py checks this table
# against the modules); ``rkit --help``, an unknown name, and ``app`` (tests, docs/cli.md) have them all.
COMMANDS = {"extract": "extract", "merge": "extract", "whiten": "whiten", "index": "index", "diffuse": "diffuse",
            "diffuse-prepare": "diffuse", "propagate": "propagate", "evaluate": "evaluate", "sfm-mine": "sfm_mine",
            "manifold-mine": "manifold_mine", "train": "train", "verify": "verify", "copy-detect": "copy_detect",
            "show": "show"}
MODULES = tuple(dict.fromkeys(COMMANDS.values()))
_ROOT_OPTIONS_WITH_VALUE = ("--threads", "--max-pixels", "--allow-root")


def _version(value: bool):
    if value:
        typer.echo(f"rkit {__version__}")
        raise typer.Exit()


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


_registered: dict[str, typer.Typer] = {}  # module -> the commands its register() added, once per process


def _register(target: typer.Typer, modules: tuple[str, ...] = MODULES) -> None:
    # Each module adds its command(s) to ``target``; import order is the order in --help. A module registers
    # once per process (its groups are module-level Typers); later apps get copies of the records.
    for mod in modules:
        if mod not in _registered:
            try:
                m = importlib.import_module(f"retrievalkit.cli.{mod}")
            except ModuleNotFoundError as e:
                if e.name == f"retrievalkit.cli.{mod}":
                    continue  # stage not built yet: only working sub-commands are registered
                raise
            m.register(_registered.setdefault(mod, typer.Typer()))
        target.registered_commands += _registered[mod].registered_commands
        target.registered_groups += [copy.copy(info) for info in _registered[mod].registered_groups]


def build_app(path: list[str] | tuple[str, ...] = ()) -> typer.Typer:
    """The ``rkit`` command for a command line naming ``path`` (see :func:`command_path`): only the module of
    ``path[0]``, and of its group only the command ``path[1]``; every command where ``path`` names none."""
    new = typer.Typer(name="rkit", help=HELP, no_args_is_help=True, add_completion=False,
                      pretty_exceptions_show_locals=False, context_settings={"help_option_names": ["-h", "--help"]})
    new.callback()(_root)
    _register(new, (COMMANDS[path[0]],) if path and path[0] in COMMANDS else MODULES)
    if len(path) >= 2:
        for info in new.registered_groups:  # copies: the module's group itself is not changed
            group = info.typer_instance
            only = [c for c in group.registered_commands if c.name == path[1]]
            if info.name == path[0] and only and not group.registered_groups:
                info.typer_instance = copy.copy(group)
                info.typer_instance.registered_commands = only
    return new


def __getattr__(name: str):
    """``app``: the whole command line (every command), built on first use and kept."""
    if name == "app":
        globals()["app"] = built = build_app()
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_path(args: list[str]) -> list[str]:
    """The command a command line runs, past the root options: ``[CMD]`` or ``[CMD, SUB]`` (the word after CMD, if
    any), or ``[]`` where it asks for rkit's own help (``rkit``, ``rkit --help``: the listing of every command)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-h", "--help", "--") or (a.startswith("-") and not a.startswith("--") and "h" in a):
            return []
        if a.startswith("-"):
            i += 2 if a in _ROOT_OPTIONS_WITH_VALUE else 1
            continue
        return [a, args[i + 1]] if i + 1 < len(args) and not args[i + 1].startswith("-") else [a]
    return []


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
        # ``app`` where it was built already (or replaced, by tests), else only the command run (Ctrl-C while its
        # modules load is handled below like one during the run)
        rkit = globals().get("app") or build_app(command_path(sys.argv[1:]))
        code = rkit(standalone_mode=False)
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

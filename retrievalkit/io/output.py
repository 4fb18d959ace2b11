"""The one write path of every output file (HDF5, CSV, model, JSON, text).

Every output goes through three steps:

1. **Claim** (:func:`claim_outputs`, or the :func:`writes_output` decorator on a stage function): before any
   work, check that the target can be written — not a directory, its folder writable or creatable, not one of
   the stage's inputs (compared by real path and by inode, so links and ``./x`` spellings are caught) — and take
   an exclusive, non-blocking lock on it. A second process that wants the same target fails at once with a
   one-line :class:`~retrievalkit.errors.UsageError` (exit code 2) and touches nothing.
2. **Write** to a temporary file beside the target (:func:`atomic_file`), or to a resumable hidden partial
   (``.NAME.partial``, :func:`partial_path`) that stays protected by the same lock.
3. **Commit**: rename into place (``os.replace``, atomic on one file system) only when the file is complete.

The lock is ``fcntl.flock`` on a hidden file ``.NAME.lock`` beside the target. The kernel drops it when the
process dies (also on SIGKILL), so a killed run never blocks the next one; a left-over lock file is reused and
removed by the next writer. Locks are re-entrant within one process (a stage that claims its output and then
writes it through :func:`atomic_file` holds one lock).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from retrievalkit.errors import UsageError

PathLike = str | os.PathLike

_held: dict[tuple[int, str], list] = {}  # (pid, lock path) -> [fd, count]
_held_guard = threading.Lock()


def _forget_locks_in_child() -> None:
    # A forked child (image-decoding workers) inherits the lock descriptors; flock is released only when every
    # copy is closed, so a child outliving a killed parent would keep the output locked. Children never write
    # outputs: close their copies (the parent's lock is unaffected).
    global _held_guard
    for fd, _ in list(_held.values()):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()
    _held_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_locks_in_child)


def partial_path(path: PathLike) -> Path:
    """Where an unfinished (resumable) output for ``path`` lives: same folder, hidden name."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def lock_path(path: PathLike) -> Path:
    """The hidden lock file of an output target."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _flatten(values: Iterable) -> Iterator[Path]:
    for v in values:
        if v is None:
            continue
        if isinstance(v, (str, os.PathLike)):
            if str(v):
                yield Path(v)
        elif isinstance(v, Iterable):
            yield from _flatten(v)


def check_output(path: PathLike, inputs: Iterable = ()) -> Path:
    """Check that ``path`` can be written, before any work. Returns the path.

    Raises:
        UsageError: ``path`` is a directory or another non-regular file, its folder is not writable (or
            cannot be created), or it names one of ``inputs`` (paths, or nested lists of paths; None skipped).
    """
    path = Path(path)
    if str(path) in ("", "."):
        raise UsageError("-o/--output is empty; give a file name")
    if path.is_dir():
        raise UsageError(f"{path}: the output is an existing directory; give a file name (e.g. {path / 'out.h5'})")
    if path.exists() and not path.is_file():
        raise UsageError(f"{path}: the output exists and is not a regular file; give another -o")
    for inp in _flatten(inputs):
        if _same_file(path, inp):
            raise UsageError(f"{path}: the output is also an input of this command ({inp}); writing it would "
                             "destroy the input — give another -o")
    folder = path.parent
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{path}: cannot create the output folder {folder} ({existing} is a file); "
                         "give another -o")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "output folder" if existing == folder else f"folder {existing} (to create {folder})"
        raise UsageError(f"{path}: the {what} is not writable; give another -o or fix its permissions")
    return path


def _lock_key(path: Path) -> tuple[int, str]:
    return (os.getpid(), os.path.join(os.path.realpath(path.parent), f".{path.name}.lock"))


def acquire_lock(path: PathLike) -> None:
    """Take the exclusive lock of output ``path`` (re-entrant within this process), without waiting.

    Raises:
        UsageError: another process holds it (exit code 2), or the lock file cannot be created.
    """
    path = Path(path)
    with _held_guard:
        key = _lock_key(path)
        if key in _held:
            _held[key][1] += 1
            return
        lp = Path(key[1])
        while True:
            try:
                fd = os.open(lp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_umask())
            except OSError as e:
                raise UsageError(f"{path}: cannot create the lock file {lp.name} beside it "
                                 f"({e.strerror}); give another -o or fix the folder's permissions") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise UsageError(f"{path}: another rkit run is writing this file (lock {lp.name} is held); "
                                     "wait for it to finish or give another -o") from None
                raise UsageError(f"{path}: cannot lock the output ({e.strerror})") from None
            # The previous holder may have removed the lock file between our open and our flock: then we
            # hold a lock on an orphaned inode and must retry on the current file.
            try:
                same = os.stat(lp).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                _held[key] = [fd, 1]
                return
            os.close(fd)


def release_lock(path: PathLike) -> None:
    """Release one acquisition of ``path``'s lock; the last one removes the lock file and unlocks."""
    path = Path(path)
    with _held_guard:
        key = _lock_key(path)
        entry = _held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(key[1])  # unlinked while still locked: see the inode check in acquire_lock
        os.close(entry[0])


def holds_lock(path: PathLike) -> bool:
    """Whether this process holds the lock of output ``path``."""
    with _held_guard:
        return _lock_key(Path(path)) in _held


@contextlib.contextmanager
def claim_outputs(outputs: PathLike | Sequence[PathLike | None] | None, inputs: Iterable = ()) -> Iterator[None]:
    """Check and lock output targets for the duration of a stage; see the module docstring.

    Folders that had to be created for the outputs are removed again (when still empty) if the stage fails
    before writing anything.
    """
    outs = [Path(o) for o in _flatten([outputs])]
    inputs = list(_flatten([inputs]))
    for i, o in enumerate(outs):
        check_output(o, inputs)
        for other in outs[:i]:
            if os.path.realpath(o) == os.path.realpath(other):
                raise UsageError(f"{o}: given as two different outputs of this command; give each its own file")
    created: list[Path] = []
    taken: list[Path] = []
    try:
        for o in outs:
            missing = []
            d = o.parent
            while not d.exists() and d.parent != d:
                missing.append(d)
                d = d.parent
            try:
                o.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"{o}: cannot create the output folder {o.parent} ({e.strerror})") from None
            created.extend(missing)
            acquire_lock(o)
            taken.append(o)
        yield
    finally:
        for o in reversed(taken):
            release_lock(o)
        for d in created:  # deepest first
            with contextlib.suppress(OSError):
                d.rmdir()


def writes_output(*output_params: str, inputs: Sequence[str | Callable[[dict], object]] = ()) -> Callable:
    """Decorate a stage function so that it claims its outputs (checks + lock) before it starts.

    ``output_params`` and ``inputs`` name parameters of the function; their values may be paths, lists of
    paths or None. An entry of ``inputs`` may also be a callable that takes the bound arguments (a dict) and
    returns paths (for inputs inside a config object). Example::

        @writes_output("output", inputs=("database", "queries"))
        def search(database, queries, output, k=100): ...
    """

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            outs = [bound.arguments.get(p) for p in output_params]
            ins = [p(bound.arguments) if callable(p) else bound.arguments.get(p) for p in inputs]
            with claim_outputs(outs, ins):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def config_paths(*fields: str, param: str = "config") -> Callable[[dict], list]:
    """An ``inputs`` entry of :func:`writes_output` for files named inside the stage's config argument
    (``param``): the values of its ``fields`` (e.g. a model or weights file an output must not replace)."""

    def paths(args: dict) -> list:
        cfg = args.get(param)
        return [getattr(cfg, f, None) for f in fields]

    return paths


@contextlib.contextmanager
def atomic_file(path: PathLike, inputs: Iterable = ()) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path`` (usual permissions).

    The target is checked and locked first (re-entrant: a stage that claimed it keeps one lock). On any
    exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    with claim_outputs(path, inputs):
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        except OSError as e:
            raise UsageError(f"{path}: cannot create a temporary file beside it ({e.strerror}); give another -o "
                             "or fix the folder's permissions") from None
        os.close(fd)
        try:
            yield Path(tmp)
            commit(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def commit(tmp: PathLike, path: PathLike) -> Path:
    """Move a finished temporary or partial file into place: flushed to disk, usual permissions, one rename."""
    tmp, path = Path(tmp), Path(path)
    with contextlib.suppress(OSError):
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    mode = os.stat(tmp).st_mode
    if stat.S_IMODE(mode) != 0o666 & ~_umask():
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes private files; outputs get the usual permissions
    try:
        os.replace(tmp, path)
    except OSError as e:
        raise UsageError(f"{path}: cannot move the finished output into place ({e.strerror}); give another "
                         "-o") from None
    return path


def write_text(path: PathLike, text: str, inputs: Iterable = ()) -> Path:
    """Write a text (JSON, CSV, ...) output atomically and return its path."""
    with atomic_file(path, inputs) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


__all__ = ["acquire_lock", "atomic_file", "check_output", "claim_outputs", "commit", "holds_lock", "lock_path",
           "partial_path", "release_lock", "write_text", "writes_output"]

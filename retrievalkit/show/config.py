"""Settings of ``rkit show`` (the one place their defaults live; the CLI only fills them)."""

from __future__ import annotations

from dataclasses import dataclass

from retrievalkit.errors import UsageError

SORTS = ("ap", "name", "file", "diff")


@dataclass
class ShowConfig:
    """What a report shows.

    Attributes:
        top_k: results shown per query (and per method); with ``matches``: pairs drawn per query.
        sort: initial row order: ``ap`` (worst first, needs ground truth), ``name``, ``file`` (ranks file
            order) or ``diff`` (largest AP difference between methods first, comparisons). None: ``ap`` with
            ground truth (``diff`` when comparing methods), else ``file``.
        protocol: revisitop protocol the page opens with (easy, medium, hard); the page can switch.
        page_size: query rows per page.
        thumb_size: longer side of a thumbnail, pixels.
        only: queries to show, by name (extension optional) or 0-based index; empty: all.
        matches: draw the local-feature matches of the top results (needs query and database locals).
        examples: copy detection: false positives and missed copies listed (each).
    """

    top_k: int | None = None
    sort: str | None = None
    protocol: str = "medium"
    page_size: int = 50
    thumb_size: int = 192
    only: tuple[str, ...] = ()
    matches: bool = False
    examples: int = 50

    def results_shown(self) -> int:
        return self.top_k if self.top_k is not None else (3 if self.matches else 10)

    def check(self) -> None:
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k {self.top_k}: must be at least 1")
        if self.sort is not None and self.sort not in SORTS:
            raise UsageError(f"--sort {self.sort!r}: expected one of {', '.join(SORTS)}")
        if self.protocol not in ("easy", "medium", "hard"):
            raise UsageError(f"--protocol {self.protocol!r}: expected easy, medium or hard")
        if self.page_size < 1:
            raise UsageError(f"--page-size {self.page_size}: must be at least 1")
        if not 32 <= self.thumb_size <= 1024:
            raise UsageError(f"--thumb-size {self.thumb_size}: expected 32 to 1024 pixels")
        if self.examples < 1:
            raise UsageError(f"--examples {self.examples}: must be at least 1")

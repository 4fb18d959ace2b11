"""Named extraction settings (hloc-style presets): ``rkit extract --preset gem-lite0-1024-ms``.

A preset fills the options the user did not set; an option given on the command line always wins.
"""

from __future__ import annotations

import difflib
from typing import Any

from retrievalkit.configs.extract import GlobalExtractConfig
from retrievalkit.errors import UsageError

MS3 = [1.0, 0.7071, 0.5]

_G = GlobalExtractConfig()
#: what a preset starts from: the stage config's defaults
DEFAULTS: dict[str, Any] = {"model": _G.model, "pooling": _G.pooling, "size": _G.size, "scales": list(_G.scales)}

PRESETS: dict[str, dict[str, Any]] = {
    # the off-the-shelf baseline of ../shared/data/README.md
    "gem-lite0-512": {"model": "efficientnet-lite0", "pooling": "gem", "size": 512, "scales": [1.0]},
    "gem-lite0-1024-ms": {"model": "efficientnet-lite0", "pooling": "gem", "size": 1024, "scales": MS3},
    # copy detection (DISC21 yardstick): small images
    "gem-lite0-320": {"model": "efficientnet-lite0", "pooling": "gem", "size": 320, "scales": [1.0]},
    # cirtorch's published networks: give their checkpoint with --weights (cirtorch keys are read directly)
    "gem-r101-1024": {"model": "resnet101", "pooling": "gem", "size": 1024, "scales": MS3},
    "gem-r50-1024": {"model": "resnet50", "pooling": "gem", "size": 1024, "scales": MS3},
    "rmac-r101-1024": {"model": "resnet101", "pooling": "rmac", "size": 1024, "scales": [1.0]},
}


def resolve_settings(preset: str | None, **given: Any) -> dict[str, Any]:
    """Defaults ← preset ← the options given (None = not given)."""
    out = dict(DEFAULTS)
    if preset:
        if preset not in PRESETS:
            close = difflib.get_close_matches(preset, PRESETS, n=3, cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"--preset {preset!r} is unknown{hint} (presets: {', '.join(sorted(PRESETS))})")
        out.update(PRESETS[preset])
    out.update({k: v for k, v in given.items() if v is not None})
    out["preset"] = preset
    return out

"""The HTML of the reports (jinja2, autoescaped; plain CSS and JavaScript, nothing fetched from a network).

Ranking reports carry their rows as JSON in the page and draw one page of rows at a time, so a report of
10 000 queries stays a few megabytes and opens quickly; images load lazily. Copy-detection reports list a
bounded number of pairs and are drawn on the server.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

from retrievalkit import __version__

ASSETS = "retrievalkit.show"  # package holding assets/: page.css, page.js and the jinja2 templates


def files_folder(output: str | os.PathLike) -> Path:
    """The folder beside a report that holds its thumbnails and plots: ``report.html`` → ``report_files/``."""
    output = Path(output)
    return output.parent / f"{output.stem}_files"


def _json_for_script(data) -> str:
    """JSON that cannot end its ``<script>`` element early, whatever the image names hold."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


TEMPLATES = ("base.html", "ranks.html", "copydetect.html")


def _asset(name: str) -> str:
    return resources.files(ASSETS).joinpath("assets", name).read_text(encoding="utf-8")


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def render_page(kind: str, data: dict | None, summary: dict) -> str:
    try:
        import jinja2
    except ImportError:
        from retrievalkit.errors import MissingDependencyError

        raise MissingDependencyError("rkit show needs jinja2: pip install -c constraints.txt jinja2") from None

    env = jinja2.Environment(loader=jinja2.DictLoader({n: _asset(n) for n in TEMPLATES}), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    metrics = [m["metrics"] for m in summary.get("methods", []) if m.get("metrics")]
    ctx = {
        "title": summary.get("title") or ("rkit show: " + ", ".join(m["label"] for m in summary["methods"])
                                          if kind == "ranks" else "rkit show"),
        "version": __version__,
        "css": _asset("page.css"),
        "js": _asset("page.js"),
        "s": summary,
        "protocol": (data or {}).get("protocol", "medium"),
        "protocols": (data or {}).get("protocols", []),
        "metrics": bool(metrics),
        "kappas": list(metrics[0]["mp"]["medium"].keys()) if metrics else [],
        "fmt": _fmt,
        "data_json": _json_for_script(data) if data is not None else "",
        "sections": summary.get("sections", []),
    }
    return env.get_template(f"{kind}.html").render(**ctx)


def write_page(output: str | os.PathLike, kind: str, data: dict | None, summary: dict) -> Path:
    """Render and write the report page atomically (the one write path, ``io/output.py``); return its path."""
    from retrievalkit.io.output import write_text

    return write_text(output, render_page(kind, data, summary))

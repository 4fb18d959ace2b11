import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_rkit


@pytest.fixture(scope="session")
def demo_run(demo_dir, tmp_path_factory) -> dict:
    """The bundled demo photos extracted with the small random network (a few seconds), searched; a copy of
    its ground truth with a query box added, so the box drawing is exercised."""
    out = tmp_path_factory.mktemp("show_demo")
    gnd = json.loads((demo_dir / "gnd.json").read_text())
    gnd["gnd"][1]["bbx"] = [40, 30, 200, 150]
    (out / "gnd.json").write_text(json.dumps(gnd))
    for split in ("database", "queries"):
        run_rkit("--threads", "1", "extract", demo_dir / "images", "--gnd", out / "gnd.json", "--split", split,
                 "--model", "tiny-cnn", "--size", "160", "-o", out / f"{split}.h5")
    run_rkit("--threads", "1", "index", "search", out / "database.h5", out / "queries.h5", "-o",
             out / "ranks.h5", "-k", "40")
    return {"dir": out, "gnd": out / "gnd.json", "images": demo_dir / "images", "ranks": out / "ranks.h5",
            "db": out / "database.h5", "q": out / "queries.h5"}


def page_data(html_path: Path) -> dict:
    """The rows a ranks report draws: the JSON block of the page."""
    text = Path(html_path).read_text(encoding="utf-8")
    start = text.index('<script type="application/json" id="rkit-data">') + len(
        '<script type="application/json" id="rkit-data">')
    return json.loads(text[start:text.index("</script>", start)])


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if exe is None:
        pytest.skip("headless Chromium not installed (Debian: apt-get install chromium); browser checks skipped")
    return exe

"""Commands import only what they use: no torch for `--help` or for the commands that run on numpy and faiss, no
pydantic anywhere (typer's option converter: retrievalkit/cli/coercion.py), and for `index search` / `index knn`
nothing but their own command module, numpy, h5py and faiss (benchmarks/cli_startup.py times them against bare
faiss scripts).

Each command runs through the real entry point (``retrievalkit.cli.app.main``) in a fresh interpreter; the
heavy modules in ``sys.modules`` after it are the held import set.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from retrievalkit.io import Features, Ranks, write_features, write_ranks
from retrievalkit.io.locals import pack_locals, write_locals
from tests.conftest import ROOT

HEAVY = ("torch", "faiss", "cv2", "matplotlib", "scipy", "h5py", "pydantic")
WATCHED = (*HEAVY, "rich", "sklearn", "PIL")

# Runs each argument list (a JSON list of lists) through rkit's main() in this one process and prints, per
# command, its exit code and which HEAVY modules were loaded once it had finished.
DRIVER = """
import json, sys
from retrievalkit.cli.app import main
out = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["rkit", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    out.append({"args": args, "code": code, "loaded": [m for m in WATCHED if m in sys.modules],
                "cli": sorted(m for m in sys.modules if m.startswith("retrievalkit.cli."))})
sys.stderr.write("RESULT " + json.dumps(out) + "\\n")
""".replace("WATCHED", repr(WATCHED))


def run_in_one_process(commands: list[list[str]]) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def first_loading(results: list[dict], module: str) -> list[str] | None:
    """The first command after which ``module`` was loaded (modules are never unloaded, so it loaded it)."""
    return next((r["args"] for r in results if module in r["loaded"]), None)


HELP = [[], ["extract"], ["merge"], ["diffuse"], ["diffuse-prepare"], ["propagate"], ["evaluate"], ["sfm-mine"],
        ["manifold-mine"], ["verify"], ["copy-detect"], ["show"], ["whiten"], ["whiten", "learn"],
        ["whiten", "apply"], ["index"], ["index", "search"], ["index", "knn"], ["index", "fuse"], ["index", "asmk"],
        ["index", "search-asmk"], ["index", "build"], ["index", "merge"], ["train"], ["train", "run"],
        ["train", "import-cirtorch"]]


def test_help_of_every_command_loads_no_heavy_module():
    results = run_in_one_process([[*c, "--help"] for c in HELP] + [["--version"]])
    assert all(r["code"] == 0 for r in results), [r for r in results if r["code"] != 0]
    for m in HEAVY:
        assert first_loading(results, m) is None, f"`rkit {' '.join(first_loading(results, m))}` imports {m}"


@pytest.fixture(scope="module")
def files(tmp_path_factory, demo_dir):
    """Features named after the demo's ground truth (random unit vectors), and random local features."""
    d = tmp_path_factory.mktemp("imports")
    gnd = json.loads((demo_dir / "gnd.json").read_text())
    rng = np.random.default_rng(0)

    def unit(n, dim):
        x = rng.standard_normal((n, dim)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    write_features(d / "db.h5", Features([f"{n}.jpg" for n in gnd["imlist"]], unit(len(gnd["imlist"]), 32)))
    write_features(d / "q.h5", Features([f"{n}.jpg" for n in gnd["qimlist"]], unit(len(gnd["qimlist"]), 32)))
    write_ranks(d / "other.h5", Ranks([f"{n}.jpg" for n in gnd["qimlist"]], [f"{n}.jpg" for n in gnd["imlist"]],
                                      np.argsort(rng.random((len(gnd["qimlist"]), len(gnd["imlist"]))), 1),
                                      np.sort(rng.random((len(gnd["qimlist"]), len(gnd["imlist"]))), 1)[:, ::-1]))

    def locals_of(names):
        per = [(rng.random((40, 4)).astype(np.float32) * 100, unit(40, 16)) for _ in names]
        return pack_locals(names, per, 16, image_sizes=np.full((len(names), 2), 200))

    write_locals(d / "db.loc.h5", locals_of([f"{n}.jpg" for n in gnd["imlist"]]))
    write_locals(d / "q.loc.h5", locals_of([f"{n}.jpg" for n in gnd["qimlist"]]))
    return d, demo_dir / "gnd.json"


def test_faiss_and_numpy_commands_never_load_torch(files):
    d, gnd = files
    commands = [
        ["-q", "--threads", "1", "index", "search", "--database", d / "db.h5", "--queries", d / "q.h5",
         "-o", d / "ranks.h5", "-k", "20", "--device", "cpu"],
        ["-q", "index", "knn", d / "db.h5", "-o", d / "knn.h5", "-k", "5", "--device", "cpu"],
        ["-q", "index", "fuse", d / "ranks.h5", d / "other.h5", "-o", d / "fused.h5", "-k", "10"],
        ["-q", "evaluate", d / "ranks.h5", "--gnd", gnd],
        ["-q", "whiten", d / "db.h5", "-o", d / "w.h5", "--dim", "16"],
        ["-q", "whiten", "apply", d / "q.h5", "--whitening", d / "w.h5", "-o", d / "q.w.h5"],
        ["-q", "merge", d / "db.h5", "-o", d / "merged.h5"],
        ["-q", "index", "build", d / "db.h5", "-o", d / "db.index.h5", "--factory", "Flat"],
        ["-q", "index", "search", "--database", d / "db.h5", "--queries", d / "q.h5", "--index", d / "db.index.h5",
         "-o", d / "ranks.index.h5"],
        ["-q", "index", "asmk", d / "db.loc.h5", "-o", d / "asmk.h5", "--codebook-size", "8", "--iters", "2"],
        ["-q", "index", "search-asmk", "--database", d / "asmk.h5", "--queries", d / "q.loc.h5",
         "-o", d / "asmk.ranks.h5"],
    ]
    results = run_in_one_process([[str(a) for a in c] for c in commands])
    assert [r["code"] for r in results] == [0] * len(commands), results
    for out in ("ranks.h5", "knn.h5", "fused.h5", "w.h5", "q.w.h5", "merged.h5", "db.index.h5", "ranks.index.h5",
                "asmk.h5", "asmk.ranks.h5"):
        assert (d / out).is_file(), out  # the commands really ran
    assert "faiss" in results[0]["loaded"]  # the search ran on faiss ...
    for m in ("torch", "cv2", "matplotlib", "pydantic"):  # ... nothing here decodes images, plots or runs a network
        assert first_loading(results, m) is None, f"`rkit {' '.join(first_loading(results, m))}` imports {m}"


# What `rkit index search|knn` may load of rkit's command line: the entry point, the shared helpers, and the index
# commands' module (which registers the other index commands' modules; their stages are imported when they run).
INDEX_CLI = {"retrievalkit.cli.app", "retrievalkit.cli.common", "retrievalkit.cli.coercion",
             "retrievalkit.cli.options", "retrievalkit.cli.index", "retrievalkit.cli.index_asmk",
             "retrievalkit.cli.index_build"}


@pytest.mark.parametrize("command", ["search", "knn"])
def test_index_search_and_knn_load_their_command_only(files, command):
    """A quiet `index search` / `index knn` loads no other command's module, no rich (no bars or tables with -q)
    and no pydantic: what the bare faiss script does not load is start-up cost (docs/performance.md)."""
    d, _ = files
    args = {"search": ["--database", d / "db.h5", "--queries", d / "q.h5", "-o", d / "ranks.lean.h5", "-k", "5"],
            "knn": [d / "db.h5", "-o", d / "knn.lean.h5", "-k", "5"]}[command]
    (result,) = run_in_one_process([[str(a) for a in ["-q", "--threads", "1", "index", command, *args]]])
    assert result["code"] == 0 and (d / args[args.index("-o") + 1]).is_file()
    assert set(result["loaded"]) == {"faiss", "h5py"}, result["loaded"]
    assert set(result["cli"]) <= INDEX_CLI and "retrievalkit.cli.index" in result["cli"], result["cli"]


def test_command_table_matches_the_command_modules():
    """``COMMANDS`` (which module registers which command, for building only the command run) is complete and
    right: each name's module registers it, and all modules together register exactly the names of the table."""
    import typer

    from retrievalkit.cli.app import COMMANDS, build_app

    every = typer.main.get_command(build_app()).commands
    assert set(every) == set(COMMANDS)
    for name, module in COMMANDS.items():
        alone = typer.main.get_command(build_app([name])).commands
        assert name in alone and {COMMANDS[n] for n in alone} == {module}, (name, sorted(alone))
    index = typer.main.get_command(build_app(["index", "knn"])).commands["index"].commands
    assert list(index) == ["knn"]  # of a group, only the command run is built ...
    assert len(typer.main.get_command(build_app(["index"])).commands["index"].commands) == len(every["index"].commands)
    assert len(typer.main.get_command(build_app(["index", "knnn"])).commands["index"].commands) > 1  # ... if named


@pytest.mark.parametrize("argv,path", [
    ([], []), (["--help"], []), (["-qh", "index"], []), (["-q", "--help", "index"], []),
    (["index"], ["index"]), (["index", "--help"], ["index"]), (["index", "search", "-k", "5"], ["index", "search"]),
    (["-q", "--threads", "1", "index", "knn", "db.h5"], ["index", "knn"]),
    (["--threads=2", "evaluate", "r.h5"], ["evaluate", "r.h5"]), (["--allow-root", "index", "extract"], ["extract"]),
    (["--max-pixels", "100", "whiten", "apply", "f.h5"], ["whiten", "apply"]),
])
def test_command_path_skips_root_options(argv, path):
    from retrievalkit.cli.app import command_path

    assert command_path(argv) == path


def test_rkit_process_of_index_search_imports_no_torch(files):
    """The real process (``python -m retrievalkit``, default ``--device auto``), read from -X importtime."""
    d, _ = files
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "retrievalkit", "-q", "index", "search",
                           "--database", d / "db.h5", "--queries", d / "q.h5", "-o", d / "ranks2.h5", "-k", "5"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
    assert "faiss" in imported and "retrievalkit.search.exact" in imported  # the timing lines were read
    assert "torch" not in imported or _cuda_possible()


def _cuda_possible() -> bool:
    """Where a GPU may be present, ``--device auto`` has to ask torch; the test then cannot hold torch out."""
    import glob

    return not sys.platform.startswith("linux") or bool(glob.glob("/dev/nvidia*") or glob.glob("/dev/dxg"))


def test_threads_reach_torch_when_a_command_imports_it_later():
    """``rkit --threads N`` no longer imports torch up front; torch gets N threads as soon as it is imported."""
    code = ("import sys; from retrievalkit.cli.app import _torch_threads; _torch_threads(1); "
            "assert 'torch' not in sys.modules; import torch.nn; print(torch.get_num_threads())")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "1"

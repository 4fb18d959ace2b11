"""No user file runs code on load: a malicious file for every loader is refused (exit 3, one line) and its
payload — ``os.system`` creating a marker file — never runs. Valid protocol-2 pickles holding numpy arrays
(the revisitop and cirtorch files are such pickles) still load."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from retrievalkit.errors import BadInputError
from retrievalkit.io.pickles import load_pickle, loads_restricted
from tests.reliability.rkit_batch import run_batch
from tests.reliability.world import (  # noqa: F401  (world: fixture)
    EXTRACT,
    RunsCode,
    assert_refused,
    cirtorch_dict,
    gnd_dict,
    world,
)


@pytest.fixture(scope="module")
def attacks(world):  # noqa: F811
    w = world
    d = w.root / "evil"
    d.mkdir()
    marker = d / "PWNED"
    payload = RunsCode(f"touch {marker}")
    torch.save({"format": "rkit/model", "schema": 1, "config": {}, "state_dict": {}, "extra": payload},
               d / "model.pt")
    torch.save({"format": "rkit/model", "schema": 1, "config": {}, "state_dict": {}, "extra": payload},
               d / "model_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "meta": payload}, d / "weights.pth")
    (d / "run").mkdir()
    torch.save({"epoch": 1, "config": {}, "net": {}, "optimizer": payload, "scheduler": {}, "log": []},
               d / "run" / "model.state.pt")
    for proto in (0, 2, 4):
        gnd = gnd_dict(sorted(p.name for p in w.images.iterdir()))
        gnd["gnd"][0]["bbx"] = payload
        (d / f"gnd_p{proto}.pkl").write_bytes(pickle.dumps(gnd, protocol=proto))
    db = cirtorch_dict(sorted(p.name for p in w.images.iterdir()))
    db["train"]["cluster"] = payload
    (d / "cirtorch.pkl").write_bytes(pickle.dumps(db, protocol=2))
    out = w.root / "evil-out"
    cases = {
        "extract_model_file": ["extract", w.images, "-o", out / "a.h5", *EXTRACT[2:], "--model", d / "model.pt"],
        "extract_model_file_legacy_format": ["extract", w.images, "-o", out / "a.h5", *EXTRACT[2:],
                                             "--model", d / "model_legacy.pt"],
        "extract_weights_file": ["extract", w.images, "-o", out / "a.h5", *EXTRACT[2:], "--model", "resnet18",
                                 "--weights", d / "weights.pth"],
        "train_start_model": ["train", w.tuples, "-o", out / "m.pt", "--model", d / "model.pt", "--epochs", "1"],
        "train_resume_state": ["train", w.tuples, "-o", d / "run" / "model.pt", "--model", "tiny-cnn", "--resume",
                               "--epochs", "1"],
        "evaluate_gnd_pkl_protocol0": ["evaluate", w.ranks, "--gnd", d / "gnd_p0.pkl"],
        "evaluate_gnd_pkl_protocol2": ["evaluate", w.ranks, "--gnd", d / "gnd_p2.pkl"],
        "evaluate_gnd_pkl_protocol4": ["evaluate", w.ranks, "--gnd", d / "gnd_p4.pkl"],
        "extract_gnd_pkl": ["extract", w.images, "--gnd", d / "gnd_p2.pkl", "--split", "database", "-o",
                            out / "b.h5", *EXTRACT],
        "import_cirtorch_pkl": ["train", "import-cirtorch", d / "cirtorch.pkl", "-o", out / "t.h5"],
        "copy_detect_model_file": ["copy-detect", "--queries", w.images, "--database", w.images, "--training",
                                   w.images, "-o", out / "m.csv", "--no-verify", "--model", d / "model.pt",
                                   "--workers", "0"],
    }
    results = run_batch(list(cases.values()), w.root)
    return dict(zip(cases, results)), marker


@pytest.mark.parametrize("case", [
    "extract_model_file", "extract_model_file_legacy_format", "extract_weights_file", "train_start_model",
    "train_resume_state", "evaluate_gnd_pkl_protocol0", "evaluate_gnd_pkl_protocol2", "evaluate_gnd_pkl_protocol4",
    "extract_gnd_pkl", "import_cirtorch_pkl", "copy_detect_model_file",
])
def test_malicious_file_is_refused_and_never_runs(attacks, case):
    results, marker = attacks
    line = assert_refused(results[case], 3, "refused")
    assert "system" in line  # the message names what the file asked for
    assert not marker.exists(), "the malicious payload ran"


def test_valid_protocol2_numpy_pickles_load_through_the_cli(world):  # noqa: F811
    """evaluate with the revisitop-style pickle gives the same metrics as with the JSON; the cirtorch pickle
    (numpy arrays, protocol 2) was imported in the set-up."""
    by_json, by_pkl = world.setup[-2], world.setup[-1]
    assert by_json.code == by_pkl.code == 0
    assert by_json.stdout == by_pkl.stdout and '"map"' in by_pkl.stdout
    assert world.tuples.is_file()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_restricted_unpickler_reads_numpy_pickles_of_every_protocol(protocol):
    raw = gnd_dict([f"x{i}.jpg" for i in range(12)])
    raw["extra"] = {"f": np.float64(2.5), "i": np.int64(-3), "b": np.array([True, False]), "e": np.zeros((0, 4)),
                    "s": {1, 2}, "t": (1, "a"), "m": np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]}
    back = loads_restricted(pickle.dumps(raw, protocol=protocol))
    assert back["imlist"] == raw["imlist"] and back["extra"]["s"] == {1, 2}
    for a, b in zip(back["gnd"], raw["gnd"]):
        for k in ("easy", "hard", "junk"):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k])
    for k in ("f", "i", "b", "e", "m"):
        assert np.array_equal(back["extra"][k], raw["extra"][k]) and back["extra"][k].dtype == raw["extra"][k].dtype


@pytest.mark.parametrize("data", [
    b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x04\x00\x00\x00zlib\x86R.",  # another codec
    b"\x80\x02c__builtin__\nbytes\nJ\x00\xe4\x0bT\x85R.",  # bytes(1_410_065_408): a huge allocation
    b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.",
    b"\x80\x02cnumpy\nload\nX\x01\x00\x00\x00x\x85R.",
], ids=["codec", "bytes-size", "eval", "numpy-load"])
def test_restricted_unpickler_refuses_other_callables(data, tmp_path):
    p = tmp_path / "x.pkl"
    p.write_bytes(data)
    with pytest.raises(BadInputError, match="x.pkl"):
        load_pickle(p)

import h5py
import numpy as np
import pytest

from retrievalkit.errors import BadInputError
from retrievalkit.io import (
    Features,
    FeaturesWriter,
    KnnGraph,
    Ranks,
    partial_path,
    read_features,
    read_knn,
    read_ranks,
    write_features,
    write_knn,
    write_ranks,
)
from retrievalkit.io.tuples import Tuples, read_tuples, write_tuples


def _feats(n=5, d=4, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, d)).astype(np.float32)
    return Features([f"img{i}.jpg" for i in range(n)], v / np.linalg.norm(v, axis=1, keepdims=True), {"a": 1})


def test_features_round_trip_and_attrs(tmp_path):
    f = _feats()
    p = write_features(tmp_path / "f.h5", f)
    g = read_features(p)
    assert g.names == f.names and np.array_equal(g.vectors, f.vectors) and g.config == {"a": 1}
    with h5py.File(p) as h:
        for key in ("kind", "schema", "rkit_version", "created", "command", "config"):
            assert key in h.attrs
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_half_storage(tmp_path):
    f = _feats()
    g = read_features(write_features(tmp_path / "f.h5", f, half=True))
    assert g.vectors.dtype == np.float32 and np.allclose(g.vectors, f.vectors, atol=1e-3)


def test_wrong_kind_is_rejected_with_file_name(tmp_path):
    p = write_knn(tmp_path / "knn.h5", KnnGraph(["a", "b"], np.array([[1], [0]]), np.ones((2, 1))))
    with pytest.raises(BadInputError, match=r"knn\.h5.*rkit/features"):
        read_features(p)


def test_wrong_schema_is_rejected(tmp_path):
    p = write_features(tmp_path / "f.h5", _feats())
    with h5py.File(p, "a") as h:
        h.attrs["schema"] = 99
    with pytest.raises(BadInputError, match="schema 99"):
        read_features(p)


def test_not_hdf5_and_missing(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("hello")
    with pytest.raises(BadInputError, match="x.h5"):
        read_features(bad)
    with pytest.raises(BadInputError, match="not found"):
        read_features(tmp_path / "nope.h5")


def test_nan_vectors_rejected(tmp_path):
    f = _feats()
    f.vectors[2, 1] = np.nan
    p = write_features(tmp_path / "f.h5", f)
    with pytest.raises(BadInputError, match="NaN"):
        read_features(p)


def test_failed_write_leaves_nothing(tmp_path):
    class Boom(Exception):
        pass

    f = _feats()
    f.vectors = np.zeros((3, 2, 2))  # wrong row count is caught on read; here force an error mid-write
    target = tmp_path / "out.h5"
    from retrievalkit.io.h5file import atomic_h5

    with pytest.raises(Boom):
        with atomic_h5(target, "rkit/features", 1) as h:
            h.create_dataset("x", data=np.zeros(3))
            raise Boom()
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_ranks_and_knn_round_trip(tmp_path):
    r = Ranks(["q0", "q1"], ["a", "b", "c"], np.array([[2, 0], [1, -1]]), np.array([[0.9, 0.1], [0.5, 0]]))
    g = read_ranks(write_ranks(tmp_path / "r.h5", r))
    assert g.query_names == ["q0", "q1"] and g.indices.tolist() == [[2, 0], [1, -1]]
    k = read_knn(write_knn(tmp_path / "k.h5", KnnGraph(["a", "b", "c"], np.array([[1], [2], [0]]),
                                                            np.array([[0.5], [0.4], [0.3]]))))
    assert k.k == 1 and k.names == ["a", "b", "c"]


def test_ranks_out_of_range_rejected(tmp_path):
    r = Ranks(["q"], ["a"], np.array([[3]]), np.array([[1.0]]))
    p = write_ranks(tmp_path / "r.h5", r)
    with pytest.raises(BadInputError, match="outside the database"):
        read_ranks(p)


def test_features_writer_resume(tmp_path):
    out = tmp_path / "f.h5"
    w = FeaturesWriter(out, 3, {"m": 1})
    w.append(["a", "b"], np.eye(3, dtype=np.float32)[:2], failed=[("c", "corrupt")])
    w.close()  # interrupted
    assert partial_path(out).exists() and not out.exists()
    w = FeaturesWriter(out, 3, {"m": 1}, resume=True)
    assert w.done == 3
    w.append(["d"], np.eye(3, dtype=np.float32)[2:])
    w.finish()
    f = read_features(out)
    assert f.names == ["a", "b", "d"] and f.failed == ["c"] and f.failed_reason == ["corrupt"]
    with pytest.raises(BadInputError, match="other settings"):
        w2 = FeaturesWriter(tmp_path / "g.h5", 3, {"m": 1})
        w2.close()
        FeaturesWriter(tmp_path / "g.h5", 3, {"m": 2}, resume=True)


def test_tuples_round_trip_and_validation(tmp_path):
    t = Tuples(["a", "b", "c"], np.array([0, 0, 1]), np.array([0]), np.array([1]), np.array([[2, -1]]), "/root")
    g = read_tuples(write_tuples(tmp_path / "t.h5", t))
    assert g.names == t.names and g.nidx.tolist() == [[2, -1]] and g.image_root == "/root"
    with pytest.raises(BadInputError, match="outside"):
        write_tuples(tmp_path / "u.h5", Tuples(["a"], np.array([0]), np.array([0]), np.array([5])))

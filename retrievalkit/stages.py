"""Every pipeline stage as one Python function, in one place, with one shape::

    stage(inputs..., output, config=None, *, progress=None, ...) -> Path

- ``inputs``: the files (or folders) the stage reads, positional, in the order the command line names them;
- ``output``: the one file it writes (through ``retrievalkit.io.output.writes_output``: checked, locked, atomic);
- ``config``: the stage's settings dataclass from ``retrievalkit/configs/`` (or beside the stage, see
  :data:`STAGES`); None means its defaults — the same defaults ``rkit`` uses when no option is given;
- keyword-only: optional input files (``graph=``, ``gnd=``, ``pca=``, ...), where the run happens and which part
  of it (``device=``, ``shard=``, ``resume=``), and ``progress``, a callback ``progress(n)`` that advances the
  stage's unit of work by ``n`` (images, queries, vectors, steps); a few stages take a second callback
  (``on_failure(name, reason)``, ``on_phase(description, total)``, ``events(kind, info)``, ``log(message)``);
- returns the path written.

The command ``rkit CMD`` builds the config from the options given and calls exactly this function. Importing
this module imports no stage (nor torch): ``from retrievalkit.stages import search`` loads only that one.

Example (the bundled demo photos; see docs/DESIGN.md, "Stages as Python functions")::

    from retrievalkit.configs.extract import GlobalExtractConfig
    from retrievalkit.configs.search import SearchConfig
    from retrievalkit.stages import extract_global, search

    feats = extract_global("examples/demo/images", "scratch/db.h5", GlobalExtractConfig(size=256))
    ranks = search(feats, feats, "scratch/ranks.h5", SearchConfig(top_k=10))
"""

from __future__ import annotations

import importlib
from typing import NamedTuple


class Stage(NamedTuple):
    """One row of the stage table: the function, its subcommand, its settings class and what flows in and out."""

    function: str  #: ``module:function``
    command: str  #: the ``rkit`` subcommand that calls it
    config: str  #: ``module:Class`` of its settings
    inputs: str  #: the positional inputs
    output: str  #: the file kind written


_E, _S, _C = "retrievalkit.extract", "retrievalkit.search", "retrievalkit.configs"
_I, _A = "retrievalkit.search.index_stages", "retrievalkit.search.asmk.stage"

#: name → stage, in pipeline order (docs/DESIGN.md shows this table)
STAGES: dict[str, Stage] = {
    "extract_global": Stage(f"{_E}.global_desc:extract_global", "extract", f"{_C}.extract:GlobalExtractConfig",
                            "images (folder)", "rkit/features"),
    "extract_local": Stage(f"{_E}.local_desc:extract_local", "extract --local", f"{_C}.extract:LocalExtractConfig",
                           "images (folder)", "rkit/locals"),
    "merge_features": Stage(f"{_E}.merge:merge_features", "merge", f"{_C}.extract:MergeConfig",
                            "features shards (list)", "rkit/features"),
    "learn_whitening": Stage("retrievalkit.whiten.stage:learn_whitening", "whiten", f"{_C}.whiten:WhitenConfig",
                             "features", "rkit/whitening"),
    "apply_whitening_file": Stage("retrievalkit.whiten.stage:apply_whitening_file", "whiten apply",
                                  f"{_C}.whiten:ApplyWhiteningConfig", "features, whitening", "rkit/features"),
    "search": Stage(f"{_S}.stages:search", "index search", f"{_C}.search:SearchConfig", "database, queries",
                    "rkit/ranks"),
    "knn": Stage(f"{_S}.stages:knn", "index knn", f"{_C}.search:KnnConfig", "database", "rkit/knn"),
    "build_index": Stage(f"{_I}:build_index", "index build", f"{_I}:IndexBuildConfig", "features",
                         "rkit/faiss-index"),
    "merge_index": Stage(f"{_I}:merge_index", "index merge", f"{_I}:IndexMergeConfig", "index parts (list)",
                         "rkit/faiss-index"),
    "search_index": Stage(f"{_I}:search_index", "index search --index", f"{_I}:IndexSearchConfig",
                          "indexes (list), queries", "rkit/ranks"),
    "knn_index": Stage(f"{_I}:knn_index", "index knn --index/--factory", f"{_I}:IndexSearchConfig", "database",
                       "rkit/knn"),
    "build_asmk": Stage(f"{_A}:build_asmk", "index asmk", f"{_C}.search:AsmkConfig", "database locals",
                        "rkit/asmk"),
    "search_asmk_files": Stage(f"{_A}:search_asmk_files", "index search-asmk", f"{_C}.search:AsmkSearchConfig",
                               "ASMK indexes (list), query locals", "rkit/ranks"),
    "fuse_ranks_files": Stage(f"{_S}.fusion:fuse_ranks_files", "index fuse", f"{_C}.search:FuseConfig",
                              "ranks files (list)", "rkit/ranks"),
    "diffuse": Stage("retrievalkit.diffusion.stage:diffuse", "diffuse", f"{_C}.diffusion:DiffusionConfig",
                     "database, queries", "rkit/ranks"),
    "prepare_spectral": Stage("retrievalkit.diffusion.stage:prepare_spectral", "diffuse-prepare",
                              f"{_C}.diffusion:DiffusionConfig", "database", "rkit/spectral"),
    "propagate": Stage("retrievalkit.diffusion.propagation_stage:propagate", "propagate",
                       f"{_C}.diffusion:PropagationConfig", "features, labels (CSV)", "predictions CSV"),
    "verify_ranks": Stage("retrievalkit.verify.rerank:verify_ranks", "verify", f"{_C}.verify:VerifyParams",
                          "ranks, query locals, database locals", "rkit/ranks"),
    "manifold_mine": Stage("retrievalkit.mining.manifold:manifold_mine", "manifold-mine",
                           f"{_C}.mining:ManifoldMineConfig", "features, graph", "rkit/tuples"),
    "sfm_mine": Stage("retrievalkit.mining.sfm:sfm_mine", "sfm-mine", f"{_C}.mining:SfmMineConfig",
                      "images (folder)", "rkit/tuples"),
    "import_cirtorch": Stage("retrievalkit.train.cirtorch_import:import_cirtorch", "train import-cirtorch",
                             f"{_C}.train:CirtorchImportConfig", "cirtorch pickle", "rkit/tuples"),
    "train": Stage("retrievalkit.train.loop:train", "train", f"{_C}.train:TrainConfig", "tuples", "rkit/model"),
    "train_selfsupervised": Stage("retrievalkit.train.selfsup:train_selfsupervised", "train --loss infonce",
                                  f"{_C}.train:SelfSupervisedConfig", "images (folder)", "rkit/model"),
    "copy_detect": Stage("retrievalkit.copydetect.stage:copy_detect", "copy-detect",
                         f"{_C}.copydetect:CopyDetectConfig", "queries, references (folders or features)",
                         "DISC21 matches CSV (or descriptors)"),
    "extract_reference_shard": Stage("retrievalkit.copydetect.stage:extract_reference_shard",
                                     "copy-detect --shard", f"{_C}.copydetect:CopyDetectConfig",
                                     "references (folder)", "rkit/features"),
    "build_ranks_report": Stage("retrievalkit.show.retrieval:build_ranks_report", "show (ranks)",
                                "retrievalkit.show.config:ShowConfig", "ranks files (list), images (folder)",
                                "HTML page"),
    "build_copydetect_report": Stage("retrievalkit.show.copydetect:build_copydetect_report", "show (copy detection)",
                                     "retrievalkit.show.config:ShowConfig",
                                     "result, ground truth CSV, queries, references (folders)", "HTML page"),
}


def _load(ref: str):
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def stage_function(name: str):
    """The function of stage ``name`` (imported on first use)."""
    return _load(STAGES[name].function)


def stage_config_class(name: str) -> type:
    """The settings dataclass of stage ``name``."""
    return _load(STAGES[name].config)


def __getattr__(name: str):
    if name in STAGES:
        return stage_function(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *STAGES])


__all__ = ["STAGES", "Stage", "stage_function", "stage_config_class", *STAGES]

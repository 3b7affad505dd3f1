"""kc: run Kaggle competitions end to end. `import pipeline as kc` gives the CLI's verbs as functions (see `api`)."""

from __future__ import annotations

import os
from typing import Any

# How OpenMP threads (LightGBM, scikit-learn, torch) wait between parallel regions. Spinning without end burns a
# busy CPU: on 2 cores under load 4, LightGBM on 2 threads took 38.5 s wall / 30.7 s CPU spinning, 9.0 s / 7.7 s
# sleeping. Sleeping at once costs a wake-up per region: the digits CNN's bf16 epoch took 39.9 s on 2 idle cores,
# 24.2 s when threads spin about 0.1 ms (libgomp's GOMP_SPINCOUNT, ~100,000 spins a millisecond) before they sleep
# (benchmarks/RESULTS.md, 2026-12-02). Both are read once, when the runtime starts: so set before kc imports any of
# them; a user who set either keeps their own.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ.update(OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT="10000")

from pipeline.core.errors import DataError, KaggleError, KcError, SubmissionError, UsageError

__version__ = "0.1.0"

# the verbs live in pipeline.api and are imported on first use, so `import pipeline` (and `kc --help`) stays light
VERBS = ("available_models", "compare", "competition", "convert", "ensemble", "explain", "explore", "fetch",
         "lr_find", "predict_images", "run", "runs", "show", "study", "submissions", "submit", "train", "tune",
         "upload", "validate", "report")

__all__ = [*VERBS, "DataError", "KaggleError", "KcError", "SubmissionError", "UsageError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in VERBS:
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *VERBS})

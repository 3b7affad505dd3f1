"""kc: run Kaggle competitions end to end. `import pipeline as kc` gives the CLI's verbs as functions (see `api`)."""

from __future__ import annotations

from typing import Any

from pipeline.core.errors import DataError, KaggleError, KcError, SubmissionError, UsageError

__version__ = "0.1.0"

# the verbs live in pipeline.api and are imported on first use, so `import pipeline` (and `kc --help`) stays light
VERBS = ("available_models", "competition", "convert", "ensemble", "explore", "fetch", "predict_images", "run", "runs",
         "show", "study", "submissions", "submit", "train", "tune", "upload", "validate", "report")

__all__ = [*VERBS, "DataError", "KaggleError", "KcError", "SubmissionError", "UsageError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in VERBS:
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *VERBS})

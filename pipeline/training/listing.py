"""How a run is listed, in `kc runs` and the report alike: its model (marked when interrupted) and its options."""

from __future__ import annotations

from pipeline.core.competitions import Competition
from pipeline.training.records import Run

HIDDEN = ("seed", "device")  # options every run has, set by --seed and --device


def model_text(run: Run) -> str:
    """The model's name, marked `(interrupted)` when Ctrl-C stopped its training."""
    return run.model + (" (interrupted)" if run.metrics.interrupted else "")


def options_text(run: Run, comp: Competition) -> str:
    """`key=value` pairs; a blend's members and weights as it used them, not the empty defaults it was given."""
    params = {k: v for k, v in run.config.params.items() if k not in HIDDEN}
    if run.model == "blend":
        from pipeline.models.blend import DEFAULTS, _names

        plan = _names(str(params.get("members", ""))) or [
            name for name, _ in DEFAULTS["regression" if comp.task == "regression" else "classes"]]
        given = [float(w) for w in str(params.get("weights", "")).split(",") if w.strip()]
        weights = given if len(given) == len(plan) and sum(given) > 0 else [1.0] * len(plan)
        params["members"] = ",".join(plan)
        params["weights"] = ",".join(f"{w / sum(weights):.2f}" for w in weights)
    return " ".join(f"{k}={v}" for k, v in params.items())

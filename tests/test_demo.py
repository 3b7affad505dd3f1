"""`kc demo`: every model trains on the threads the demo's table names."""

from pathlib import Path

import pytest


class Stop(Exception):
    """Raised by the fake trainer once it has seen what it needs."""


@pytest.mark.parametrize("idle", [1, 2])
def test_demo_trains_on_the_threads_its_title_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, idle: int):
    from pipeline import demo
    from pipeline.core.workspace import Workspace
    from pipeline.models import _torch
    from pipeline.training import trainer

    asked = []

    def fake_train(comp, ws, cfg, **kwargs):
        asked.append(cfg.threads)
        raise Stop

    monkeypatch.setattr(_torch, "idle_cores", lambda: idle)
    monkeypatch.setattr(trainer, "train", fake_train)
    with pytest.raises(Stop):
        demo.run_demo(Workspace(tmp_path / "ws"))
    assert asked == [idle]  # the count the title names, not 0 for the trainer to measure again

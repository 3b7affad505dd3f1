"""The `kc` command line: parse options, call one library function, show the result.

The commands live in three modules by stage (data, training, submitting), each registering on the one Typer app of
`common.py`; importing them here is what puts them on it, in this order in `kc --help`.
"""

from __future__ import annotations

# isort: off
from pipeline.cli import data_commands  # noqa: F401  fetch, convert, show, explore, explain, lr-find
from pipeline.cli import train_commands  # noqa: F401  train, compare, models, runs, tune
from pipeline.cli import submit_commands  # noqa: F401  submit, validate, ensemble, submissions, report, ...
# isort: on
from pipeline.cli.common import app, handled

__all__ = ["app", "handled", "main"]

for _info in app.registered_commands:  # whole summaries in `kc --help` (click cuts them at ~45 characters)
    _info.short_help = _info.short_help or (_info.callback.__doc__ or "").strip().splitlines()[0]


def main() -> None:
    """Console-script entry point."""
    app()

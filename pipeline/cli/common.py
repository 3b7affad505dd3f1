"""What every kc command shares: the Typer app, its options, one-line errors and the workspace."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from typer.core import TyperGroup

from pipeline.core.errors import KcError
from pipeline.core.workspace import Workspace

# click's UsageError: Typer exports only its subclass BadParameter (its click is a private copy); same attributes
_CLICK_USAGE_ERROR = cast("type[typer.BadParameter]", typer.BadParameter.__base__)


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """A usage error as one `Error:` line that says where help is (click prints a usage block first)."""
    try:
        yield
    except _CLICK_USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `kc` alone shows the help
            raise
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        typer.echo(f"Error: {exc.format_message()}{where}", err=True)
        raise typer.Exit(exc.exit_code) from None


class KcGroup(TyperGroup):
    """kc's command group: parsing the command line, and usage errors on one line."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        """Parse kc's own options (`--workspace`, `--version`)."""
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        """Find the command and parse its options, then run it."""
        with _one_line_usage_errors():
            return super().invoke(ctx)


app = typer.Typer(cls=KcGroup, no_args_is_help=True, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 160},
                  help="kc: run Kaggle competitions end to end (fetch, convert, train, submit).")
F = TypeVar("F", bound=Callable[..., Any])

Slug = Annotated[str | None, typer.Argument(help="competition slug, e.g. titanic (optional with one competition)",
                                             metavar="SLUG", show_default=False)]
# options `kc train` and `kc tune` share
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="a model name (default: competition.json's "
                                                                    "default_model; see `kc models`)", metavar="NAME")]
ValidPct = Annotated[float, typer.Option(help="fraction held out for validation")]
Seed = Annotated[int, typer.Option(help="seed for the split and the model")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda")]
Threads = Annotated[int, typer.Option(min=0, help="threads each model may use, at most the cores kc may run on (0 = "
                                               "the cores idle at the start)")]


def note_more_threads_than_cores(threads: int) -> None:
    """Say so when --threads asks for more threads than kc may run on: it uses the cores it has."""
    from pipeline.core import threads as cores

    if threads > (n := cores.available()):
        typer.echo(f"NOTE: --threads {threads}: kc may run on {n} core{'s' * (n > 1)} here, so it uses {n}", err=True)


# --workspace is taken before the command (`kc --workspace W train`) and after it (`kc train --workspace W`)
WorkspaceOpt = Annotated[Path | None, typer.Option("--workspace", help="workspace root (default: $KC_WORKSPACE or .)",
                                                   metavar="DIR", show_default=False)]


def handled(fn: F) -> F:
    """Turn a KcError into one `Error:` line on stderr and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():  # kc prints nothing from a library call: its own messages say what happened
                for category in (RuntimeWarning, FutureWarning, UserWarning, DeprecationWarning):
                    warnings.simplefilter("ignore", category)
                return fn(*args, **kwargs)
        except KcError as exc:
            typer.echo(f"Error: {_printable(str(exc))}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("Error: interrupted", err=True)
            raise typer.Exit(130) from None
        except MemoryError:
            typer.echo("Error: out of memory: close other programs, or use a machine with more memory", err=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # disk full, permissions, a folder where a file should be
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"Error: {where}{(exc.strerror or str(exc)).lower()}", err=True)
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a bug in kc: one line, with the full story saved for a bug report
            saved = _save_traceback()
            text = " ".join(str(exc).split())[:200]
            typer.echo(f"Error: unexpected {type(exc).__name__}: {text} (full traceback in {saved})",
                       err=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _printable(text: str) -> str:
    """Text with control characters escaped: names from files and servers may hold terminal escapes."""
    return text if text.isprintable() else "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _save_traceback() -> Path:
    import tempfile
    import traceback
    from datetime import datetime

    folder = Path(tempfile.gettempdir()) / "kc-tracebacks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now().strftime('%Y%m%d-%H%M%S-%f')}.txt"
    path.write_text(traceback.format_exc())
    return path


def _version(value: bool) -> None:
    if value:
        import pipeline

        typer.echo(f"kc {pipeline.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print kc's version and exit")] = False,
) -> None:
    ctx.obj = Workspace.resolve(workspace)


def workspace_of(ctx: typer.Context, workspace: Path | None = None) -> Workspace:
    """The workspace given after the command, else before it, else $KC_WORKSPACE or the current directory."""
    if workspace is not None:
        return Workspace.resolve(workspace)
    return ctx.obj if isinstance(ctx.obj, Workspace) else Workspace.resolve()

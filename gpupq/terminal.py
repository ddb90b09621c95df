"""The terminal side of the command line: where output goes (results on stdout, progress and
errors on stderr), and how every failure is shown, one line and an exit code, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

from .errors import GpupqError

try:  # typer 0.2x vendors its own click; older typer uses click itself
    from typer import _click as click
except ImportError:  # pragma: no cover - depends on the typer version installed
    import click  # type: ignore[no-redef]


#: click 8.2+ signals "no arguments: show the help" with a UsageError subclass; that one must
#: keep printing the help (click 8.1 prints it without an exception: nothing to catch)
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _OneLineError(click.exceptions.ClickException):
    """A usage error shown as gpupq shows every error: one line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        err.print(f"error: {self.message}", markup=False, highlight=False, soft_wrap=True)


class OneLineGroup(TyperGroup):
    """typer's group, with click's usage errors (a bad choice, a missing value, an unknown
    option) turned into one line instead of a usage box."""

    def _one_line(self, exc: Any, ctx: Any) -> _OneLineError:
        message = exc.format_message().replace("Value error, ", "")
        if getattr(exc, "ctx", None) is not None:
            where = exc.ctx.command_path
        else:  # click 8.1 leaves ctx unset on some parse errors: name the subcommand being parsed
            sub = getattr(ctx, "invoked_subcommand", None)
            where = f"{ctx.command_path} {sub}" if sub else ctx.command_path
        return _OneLineError(f"{message} (see {where} --help)")

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise  # prints the help
        except click.exceptions.UsageError as exc:
            raise self._one_line(exc, click.Context(self, info_name=info_name)) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except click.exceptions.UsageError as exc:
            raise self._one_line(exc, ctx) from None


# emoji=False: paths and messages are printed as they are (":x:" in a file name stays ":x:")
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)


@contextmanager
def stdout_guard() -> Iterator[None]:
    """Writing results to stdout: a full disk (``> /dev/full``) or a closed pipe is one line and
    exit code 2, never a traceback; fd 1 is then pointed at /dev/null, so that the interpreter's
    last flush at exit does not fail again."""
    try:
        yield
        sys.stdout.flush()
    except OSError as exc:
        with suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        if isinstance(exc, BrokenPipeError):  # the reader went away (| head): nothing to say
            raise typer.Exit(2) from None
        fail(f"cannot write to standard output: {exc.strerror or exc}")


def fail(message: str) -> None:
    """One line on stderr, exit code 2."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def progress_reporter(enabled: bool, eta: bool = False) -> Iterator[Any]:
    """A progress(phase, done, total) callback drawing rich bars on stderr (a terminal), or
    printing each phase once as it starts (a pipe or log). eta: bars show the time remaining
    (sweep and recommend, whose phases repeat: builds, candidates)."""
    if not enabled:
        yield None
        return
    if err.is_terminal:
        bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TimeElapsedColumn(),
            *([TextColumn("ETA"), TimeRemainingColumn()] if eta else []),
            console=err,
            transient=True,
        )
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(escape(phase), total=total)
            bars.update(tasks[phase], completed=done)

        with bars:
            yield update
    else:
        seen: set[str] = set()

        def update(phase: str, done: int, total: int) -> None:
            if phase not in seen:
                seen.add(phase)
                err.print(f"{phase} ...", markup=False, highlight=False)

        yield update


@contextmanager
def user_errors() -> Iterator[None]:
    """What a command reports in one line instead of a traceback: gpupq's errors and running out
    of memory (exit 2), Ctrl-C (exit 130)."""
    try:
        yield
    except GpupqError as exc:
        fail(str(exc))
    except MemoryError:
        fail("out of memory; lower --n, --queries or --batch-size")
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None

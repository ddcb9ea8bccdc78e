"""Terminal output: one console, tables, progress bars, and errors that say what to do."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


class OperatorError(click.ClickException):
    """A failure the operator can act on: printed as one message, exit code 1."""

    def show(self, file: object = None) -> None:
        errors.print(f"[bold red]error:[/] {self.message}")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    result = Table(title=title, title_justify="left")
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result


def progress() -> Progress:
    """A progress bar for long work (stays quiet when stdout is not a terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
    )

"""Tables for people: full values always. Piped, no width limit (scripts and pagers read whole ids);
on a narrow terminal a cell wraps onto more lines rather than being cut to `+15…`."""

from __future__ import annotations

from typing import Iterable, Sequence


def console():
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=10_000)


def print_table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, empty: str | None = None) -> None:
    from rich.markup import escape
    from rich.table import Column, Table

    rows = list(rows)
    if not rows and empty is not None:
        console().print(empty)
        return
    table = Table(*(Column(h, overflow="fold") for h in headers))
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console().print(table)

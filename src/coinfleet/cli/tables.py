"""Tables that fit an 80-column terminal: a default set of columns, names never cut; `--wide` for all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import typer
from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table

#: the width `--wide` renders at: every column at its natural width, whatever the terminal
WIDE_WIDTH = 240
#: values up to this long keep to one line; longer text (errors, feature lists) wraps
SHORT_VALUE = 20
WIDE_OPTION = typer.Option(False, "--wide", help="Every column (wider than 80 characters).")


@dataclass(frozen=True)
class Column:
    """One column of a table."""

    header: str
    narrow: bool = True  #: shown by default; False: only with --wide
    name: bool = False  #: a name the user types next: left-aligned and never cut
    text: bool = False  #: words, left-aligned (numbers are right-aligned)


def make_table(
    title: str | None,
    columns: Sequence[Column],
    rows: Iterable[Sequence[str]],
    *,
    wide: bool,
    caption: str | None = None,
) -> Table:
    """The table with the columns the view shows; name columns are as wide as their longest value."""
    rows = [list(row) for row in rows]
    shown = [i for i, column in enumerate(columns) if wide or column.narrow]
    table = Table(
        title=title,
        caption=caption,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for i in shown:
        column = columns[i]
        longest = max((len(row[i]) for row in rows), default=0)
        if column.name:
            table.add_column(column.header, no_wrap=True, min_width=max(longest, len(column.header)))
        else:  # a short value is never folded; the header wraps at its spaces, long text at the width
            word = max(len(part) for part in column.header.split())
            justify: JustifyMethod = "left" if column.text else "right"
            table.add_column(column.header, justify=justify, min_width=max(min(longest, SHORT_VALUE), word))
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def print_table(console: Console, table: Table, *, wide: bool) -> None:
    """Print at the terminal's width, or at WIDE_WIDTH with --wide."""
    console.print(table, width=WIDE_WIDTH if wide else None, crop=not wide)

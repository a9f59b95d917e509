"""`coinfleet bench NAME`: benchmarks that print a table and, with --json, one JSON line last.

Each benchmark lives in `coinfleet.bench.<name>` with `async def run(settings, ...) -> dict` and
a `render(result) -> rich table`; the commands here only parse options and print.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="Benchmarks: measured side by side in one run.", no_args_is_help=True)
JSON_OPTION = typer.Option(False, "--json", help="End with one JSON object on stdout.")

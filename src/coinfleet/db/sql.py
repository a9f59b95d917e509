"""Named SQL queries from `.sql` files, loaded once at import.

Each query in `db/queries/*.sql` starts with a header line `-- name: some_name --`, then a one-line
comment saying what it does, then the statement.
"""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*) --\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file's text into {name: statement}; raise ValueError on duplicates or empties."""
    parts = _HEADER.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        statement = body.strip()
        if not statement or name in queries:
            raise ValueError(f"query {name!r} is empty or defined twice")
        queries[name] = statement
    return queries


def _load_all() -> dict[str, str]:
    queries: dict[str, str] = {}
    folder = resources.files("coinfleet.db") / "queries"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            for name, statement in parse_queries(entry.read_text("utf-8")).items():
                if name in queries:
                    raise ValueError(f"query {name!r} is defined in two files")
                queries[name] = statement
    return queries


QUERIES: dict[str, str] = _load_all()


def query(name: str) -> str:
    """The statement called `name`; KeyError names the missing query."""
    try:
        return QUERIES[name]
    except KeyError:
        raise KeyError(f"no SQL query named {name!r} in coinfleet/db/queries") from None

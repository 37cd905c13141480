"""A feature query's common table expressions, one by one.

DuckDB runs a query's CTEs as separate statements, each into a temporary table (`DuckDbEngine`):
one statement's operators then hold the memory limit and spill past it, where one statement over
two dozen CTEs kept several large intermediate results live at once (the whole of Ta Feng's
user-kNN went past 4 GB and 50 GB of spill that way). Spark plans the whole `WITH` query itself.
The SQL text is the same for both; this module only reads it apart and puts it back together.
"""

from __future__ import annotations

import re

_CTE_HEAD = re.compile(r"\s*(\w+)\s+AS\s+\(", re.IGNORECASE)
_COMMA = re.compile(r"\s*,")


def split_ctes(sql: str) -> tuple[list[tuple[str, str]], str]:
    """`WITH a AS (...), b AS (...) SELECT ...` as ([("a", "..."), ("b", "...")], "SELECT ...");
    a query without a top-level WITH as ([], the query). Comments (`--` to the end of the line) go."""
    text = re.sub(r"--[^\n]*", "", sql).strip()
    opening = re.match(r"WITH\s+", text, re.IGNORECASE)
    if opening is None:
        return [], text
    ctes: list[tuple[str, str]] = []
    pos = opening.end()
    while True:
        head = _CTE_HEAD.match(text, pos)
        if head is None:
            raise ValueError(f"expected `name AS (` at character {pos} of the query: {text[pos:pos + 80]!r}")
        end = _closing(text, head.end())
        ctes.append((head.group(1), text[head.end():end]))
        comma = _COMMA.match(text, end + 1)
        if comma is None:
            return ctes, text[end + 1:].strip()
        pos = comma.end()


def _closing(text: str, start: int) -> int:
    """The index of the `)` that closes the `(` just before `start`, outside quoted literals."""
    depth, quoted = 1, False
    for i in range(start, len(text)):
        c = text[i]
        if c == "'":
            quoted = not quoted
        elif not quoted and c in "()":
            depth += 1 if c == "(" else -1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced parentheses in the CTE starting at character {start}")


def with_ctes(ctes: list[tuple[str, str]], select: str) -> str:
    """The query `split_ctes` read apart, put back together around `select`."""
    if not ctes:
        return select
    return "WITH " + ",\n".join(f"{name} AS ({body})" for name, body in ctes) + "\n" + select

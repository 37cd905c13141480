"""The feature queries' CTEs read apart for DuckDB's one-statement-per-CTE run, and put back together."""

import pandas as pd
import pytest

from shoprank.features.engine import queries
from shoprank.features.engine.ctes import split_ctes, with_ctes
from shoprank.features.engine.dialect import DUCKDB, SPARK

AT = pd.Timestamp("2001-02-01", tz="UTC")


def test_nested_parentheses_quotes_and_comments_stay_inside_their_cte() -> None:
    sql = """WITH a AS (SELECT f(x, (1 + 2)) AS y FROM t WHERE s = 'it''s (not) a paren'),
    -- a comment with an apostrophe's ( that must not count
    b AS (SELECT * FROM (SELECT y FROM a) inner_q)
    SELECT * FROM b"""
    ctes, select = split_ctes(sql)
    assert [name for name, _ in ctes] == ["a", "b"]
    assert ctes[0][1] == "SELECT f(x, (1 + 2)) AS y FROM t WHERE s = 'it''s (not) a paren'"
    assert ctes[1][1] == "SELECT * FROM (SELECT y FROM a) inner_q"
    assert select == "SELECT * FROM b"


def test_a_query_without_ctes_is_its_own_select() -> None:
    assert split_ctes(" SELECT 1 ") == ([], "SELECT 1")


@pytest.mark.parametrize("broken", ["WITH a SELECT 1", "WITH a AS (SELECT (1) SELECT 2"])
def test_a_malformed_query_is_refused_with_where(broken: str) -> None:
    with pytest.raises(ValueError, match="character"):
        split_ctes(broken)


@pytest.mark.parametrize("dialect", [DUCKDB, SPARK], ids=lambda d: d.name)
@pytest.mark.parametrize("table", ["item_stats", "user_stats", "item_neighbours"])
def test_every_feature_query_round_trips(dialect, table: str) -> None:
    """What DuckDB runs CTE by CTE is exactly what Spark plans as one query."""
    sql = queries.stamped(queries.table_query(table, dialect, AT), dialect, AT)
    ctes, select = split_ctes(sql)
    assert len(ctes) >= 3 and select.startswith("SELECT q.*")
    assert split_ctes(with_ctes(ctes, select)) == (ctes, select)

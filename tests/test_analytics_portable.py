"""Analytics that give the same answer on any Ibis engine, PySpark included (issue 12, item 6).

No Spark here: the SQL Ibis writes for Spark is checked as text, or translated by sqlglot and run
on DuckDB, which keeps Spark's semantics for the constructs it uses (``SUM`` of no value is
null). The same readings on DuckDB and PostgreSQL are covered by the analytics' own tests
(``test_attribute_values_are_read_alike_on_every_engine`` in ``test_analytics_promises.py``).
"""

from __future__ import annotations

import ibis
import pytest
import sqlglot

from corridor.analytics.core.counting import count_where
from corridor.analytics.feedback.promises import attribute_value

GROUPS = {
    "g": ["all null", "all null", "mixed", "mixed", "mixed"],
    "p": [None, None, True, None, False],
}


class _SparkOptions(ibis.config.Config):
    """What the PySpark backend registers on import (pyspark is not installed here)."""

    treat_nan_as_null: bool = False


@pytest.fixture(autouse=True)
def spark_options(monkeypatch):
    """The PySpark compiler reads ``ibis.options.pyspark`` (float literals)."""
    if ibis.options.pyspark is None:
        monkeypatch.setattr(ibis.options, "pyspark", _SparkOptions())


@pytest.fixture
def duck():
    con = ibis.duckdb.connect()
    con.create_table("t", ibis.memtable(GROUPS, schema={"g": "string", "p": "boolean"}))
    yield con
    con.disconnect()


def _as_spark_on_duckdb(con, expr) -> list[tuple]:
    """Run the SQL Ibis writes for PySpark, translated to DuckDB's dialect."""
    spark = ibis.to_sql(expr, dialect="pyspark")
    return con.raw_sql(sqlglot.transpile(spark, read="spark", write="duckdb")[0]).fetchall()


def test_a_group_whose_condition_is_null_throughout_counts_zero(duck):
    t = duck.table("t")
    expr = t.group_by("g").aggregate(n=count_where(t, t.p)).order_by("g")
    assert expr.schema()["n"].is_int64()
    assert expr.execute().to_dict("records") == [
        {"g": "all null", "n": 0},
        {"g": "mixed", "n": 1},
    ]
    # what Spark would run: Ibis writes SUM(CAST(p AS BIGINT)) for t.count(where=p) there
    plain = t.group_by("g").aggregate(n=t.count(where=t.p)).order_by("g")
    assert _as_spark_on_duckdb(duck, plain) == [("all null", None), ("mixed", 1)]
    assert _as_spark_on_duckdb(duck, expr) == [("all null", 0), ("mixed", 1)]


def test_counting_no_row_at_all_is_zero_too(duck):
    t = duck.table("t")
    none = t.filter(t.g == "no such group")
    expr = none.aggregate(n=count_where(none, none.p), every=count_where(none))
    assert expr.execute().to_dict("records") == [{"n": 0, "every": 0}]
    assert _as_spark_on_duckdb(duck, expr) == [(0, 0)]


def test_attributes_are_read_without_python_udfs_on_spark():
    """Ibis's PySpark backend runs ``.str``/``.float``/``.bool`` of JSON as Python UDFs
    (``unwrap_json_*``); attribute values are read with native SQL only."""
    t = ibis.table({"attributes": "json"}, name="interactions")
    typed = ibis.to_sql(t.select(v=t.attributes["w"].float), dialect="pyspark")
    assert "unwrap_json" in typed.lower()  # the Ibis behaviour this guards against
    sql = ibis.to_sql(t.select(v=attribute_value(t.attributes, "w")), dialect="pyspark")
    assert "unwrap_json" not in sql.lower()
    assert "get_json_object" in sql.lower()

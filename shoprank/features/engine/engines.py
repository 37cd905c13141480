"""Where the feature queries run: DuckDB in-process (the default), or Spark (a cluster, or local mode).

Both take parquet files or folders (a local path or, on the cluster, an `s3a://` URL), register them
as the `interactions` and `items` views, run a query of `queries.py` and write its result to
parquet. Neither holds the events in Python: DuckDB streams the files and spills to disk beyond
its memory limit, Spark partitions them over its executors.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from shoprank.features.engine.ctes import split_ctes
from shoprank.features.engine.dialect import DUCKDB, SPARK, Dialect
from shoprank.storage import replacing


class Engine(Protocol):
    dialect: Dialect

    def register(self, name: str, parquet: str | Path) -> None: ...

    def columns(self, name: str) -> list[str]: ...

    def to_parquet(self, sql: str, out: str | Path) -> int: ...

    def close(self) -> None: ...


def _parquet_glob(path: str | Path) -> str:
    path = str(path)
    return f"{path.rstrip('/')}/**/*.parquet" if Path(path).is_dir() else path


class DuckDbEngine:
    """DuckDB in this process, with a memory limit it spills past rather than exceed."""

    dialect = DUCKDB

    def __init__(self, memory_limit: str = "4GB", threads: int | None = None,
                 spill_dir: str | Path | None = None) -> None:
        import duckdb

        self._spill = Path(spill_dir or tempfile.mkdtemp(prefix="shoprank-duckdb-"))
        self.con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(self._spill),
                                          "threads": threads or os.cpu_count() or 1,
                                          "preserve_insertion_order": False})

    def register(self, name: str, parquet: str | Path) -> None:
        glob = _parquet_glob(parquet).replace("'", "''")
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet('{glob}')")

    def columns(self, name: str) -> list[str]:
        return [row[0] for row in self.con.execute(f"DESCRIBE {name}").fetchall()]

    def to_parquet(self, sql: str, out: str | Path) -> int:
        """Write the result to `out` atomically (a temporary file renamed into place); its row count.
        Each of the query's CTEs runs first as its own statement into a temporary table (`ctes.py`
        says why), dropped when the query is done, whether it succeeded or not."""
        ctes, select = split_ctes(sql)
        try:
            for name, body in ctes:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {body}")
            with replacing(Path(out)) as tmp:
                target = str(tmp).replace("'", "''")
                (rows,) = self.con.execute(f"COPY ({select}) TO '{target}' (FORMAT parquet)").fetchone()
        finally:
            for name, _ in reversed(ctes):
                self.con.execute(f"DROP TABLE IF EXISTS {name}")
        return int(rows)

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._spill, ignore_errors=True)


def spark_conf(master: str | None) -> dict[str, str]:
    """The session's settings. Only a `local[...]` master gets the one-machine ones (loopback driver,
    few shuffle partitions, no UI or console progress): on a cluster the driver's address and the
    parallelism are the Spark operator's (set by spark-submit), and a loopback driver there would be
    unreachable from its executors."""
    conf = {"spark.sql.session.timeZone": "UTC", "spark.sql.execution.arrow.pyspark.enabled": "true"}
    if master is not None and master.startswith("local"):
        conf |= {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                 "spark.sql.shuffle.partitions": "8",
                 "spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
    return conf


class SparkEngine:
    """A Spark session: `local[n]` on one machine (tests), the cluster's master when one is configured."""

    dialect = SPARK

    def __init__(self, master: str | None = "local[1]", conf: dict[str, str] | None = None) -> None:
        from pyspark.sql import SparkSession

        # py4j logs each connection it closes at INFO, some from finalizers at interpreter exit, after
        # the log handlers are gone ("I/O operation on closed file"): nothing a user needs
        logging.getLogger("py4j").setLevel(logging.WARNING)
        builder = SparkSession.builder.master(master) if master else SparkSession.builder  # None: spark-submit's
        builder = builder.appName("shoprank-features")
        for key, value in {**spark_conf(master), **(conf or {})}.items():
            builder = builder.config(key, value)
        self.spark = builder.getOrCreate()
        self._local = bool(master and master.startswith("local"))

    def register(self, name: str, parquet: str | Path) -> None:
        reader = self.spark.read.option("recursiveFileLookup", "true") if Path(str(parquet)).is_dir() \
            else self.spark.read
        reader.parquet(str(parquet)).createOrReplaceTempView(name)

    def columns(self, name: str) -> list[str]:
        return list(self.spark.table(name).columns)

    def to_parquet(self, sql: str, out: str | Path) -> int:
        """Spark writes a folder of part files; its commit protocol makes the folder appear whole."""
        frame = self.spark.sql(sql)
        frame.write.mode("overwrite").parquet(str(out))
        return int(self.spark.read.parquet(str(out)).count())

    def close(self) -> None:
        """Stop the session; on a local master also the JVM this process launched for it, which would
        otherwise keep running (and using a share of a core) until the process exits. Under
        spark-submit the JVM is the submitter's and is left alone."""
        from pyspark import SparkContext

        self.spark.stop()
        gateway = SparkContext._gateway
        launched = getattr(gateway, "proc", None) if gateway is not None else None
        if not self._local or launched is None:
            return
        with SparkContext._lock:
            gateway.shutdown()
            launched.terminate()
            launched.wait(timeout=30)
            SparkContext._gateway = None  # the next engine launches a JVM of its own
            SparkContext._jvm = None


def open_engine(name: str, master: str | None = None, memory_limit: str = "4GB") -> Engine:
    """`duckdb` (embedded, spilling past `memory_limit`) or `spark` (`master`; None: spark-submit's)."""
    if name == "duckdb":
        return DuckDbEngine(memory_limit=memory_limit)
    if name == "spark":
        return SparkEngine(master)
    raise ValueError(f"unknown feature engine {name!r}: expected 'duckdb' or 'spark'")

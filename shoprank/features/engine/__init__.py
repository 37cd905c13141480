"""The feature job written once in SQL (`queries.py`) and run by DuckDB on one machine or Spark on a cluster."""

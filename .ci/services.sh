#!/usr/bin/env bash
# Real local servers the tests use in place of the cluster's: Redis (the tests start their own
# redis-server) and PostgreSQL (the Feast SQL registry); Chromium for the Airflow UI test; Java for
# pyspark's local mode.
# Debian packages, loopback only.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
# headless Chromium: the Airflow UI test screenshots the DAG's grid view
command -v chromium >/dev/null || need+=(chromium)
# Java for Spark in local mode: the feature job's Spark path is tested against the embedded one
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')
if [ -z "$cluster" ]; then
  pg_createcluster 15 main >/dev/null
  cluster="15 main"
fi
# shellcheck disable=SC2086
pg_ctlcluster $cluster start 2>/dev/null || true
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='shoprank'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE shoprank LOGIN PASSWORD 'shoprank'\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='shoprank'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE DATABASE shoprank OWNER shoprank\""
# the online API's read-only role on the Feast registry (the tests grant it SELECT on the registry tables)
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='shoprank_reader'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE shoprank_reader LOGIN PASSWORD 'shoprank_reader'\""
echo "services: redis-server $(redis-server --version | awk '{print $3}'), postgres $cluster on 127.0.0.1:5432"

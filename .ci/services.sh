#!/usr/bin/env bash
# The real local servers the tests use in place of the cluster's, brought up the same way on a
# developer's machine and in CI (`make test` runs `start` first and `stop` after, `make services`
# runs `start` alone):
#   - Redis:    the tests start their own redis-server on a free loopback port; this installs it.
#   - Postgres: the Feast SQL registry; this runs `initdb` into a scratch folder and starts it on a
#               free loopback port, with the roles the tests use (shoprank, shoprank_reader).
#   - Chromium: the Airflow UI test looks at the DAG's grid view in headless Chromium.
#   - Java:     pyspark's local mode (the feature job's Spark path is tested against DuckDB).
# Missing Debian packages are installed when this runs as root or with sudo without a password.
# Where it cannot, it says once what is missing and the command that installs it; those tests are
# then skipped with that reason (never failed). SERVICES=skip leaves the machine alone.
#
#   bash .ci/services.sh start   install what is missing, start Postgres, write .services/env
#   bash .ci/services.sh stop    stop what `start` started (nothing else)
set -uo pipefail
cd "$(dirname "$0")/.."
STATE=.services
ENV_FILE=$STATE/env
mkdir -p "$STATE"

say() { echo "services: $*" >&2; }

# binary on PATH -> Debian package that brings it
declare -A PACKAGE=([redis-server]=redis-server [chromium]=chromium [java]=openjdk-17-jre-headless
                    [pg_ctlcluster]=postgresql)

pg_bindir() {  # where initdb/pg_ctl are: on PATH, or Debian's versioned folder behind its wrappers
  if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v initdb)")"  # the real folder, with psql beside it
  elif command -v pg_ctlcluster >/dev/null; then
    find /usr/lib/postgresql -maxdepth 3 -name initdb -path '*/bin/*' 2>/dev/null | sort -V | tail -1 | xargs -r dirname
  fi
}

missing_packages() {
  local name
  for name in redis-server chromium java; do
    command -v "$name" >/dev/null || echo "${PACKAGE[$name]}"
  done
  [ -n "$(pg_bindir)" ] || echo postgresql
}

can_install() {
  if [ "$(id -u)" = 0 ]; then echo ""; return 0; fi
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then echo "sudo"; return 0; fi
  return 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_postgres() {
  local bindir=$1 data port run_as=()
  data=$(mktemp -d /tmp/shoprank-pg-XXXXXX)
  chmod 755 "$data"
  if [ "$(id -u)" = 0 ]; then  # initdb refuses root: run it as Debian's postgres user
    if ! id postgres >/dev/null 2>&1; then
      say "no 'postgres' user to run the scratch Postgres as root; Postgres tests will skip"
      rm -rf "$data"
      return 1
    fi
    chown postgres "$data"
    run_as=(runuser -u postgres --)
  fi
  port=$(free_port)
  printf 'shoprank-superuser\n' > "$data/.pw" && chmod 644 "$data/.pw"
  if ! "${run_as[@]}" "$bindir/initdb" -D "$data/db" -U postgres --pwfile="$data/.pw" --auth-local=trust \
       --auth-host=scram-sha-256 -E UTF8 >"$data/initdb.log" 2>&1; then
    say "initdb failed: $(tail -3 "$data/initdb.log" | tr '\n' ' '); Postgres tests will skip"
    rm -rf "$data"
    return 1
  fi
  if ! "${run_as[@]}" "$bindir/pg_ctl" -D "$data/db" -l "$data/postgres.log" -w -t 60 \
       -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=off" start >/dev/null; then
    say "Postgres did not start: $(tail -3 "$data/postgres.log" | tr '\n' ' '); Postgres tests will skip"
    rm -rf "$data"
    return 1
  fi
  local psql=("${run_as[@]}" "$bindir/psql" -qAt -h "$data" -p "$port" -U postgres -d postgres)
  {
    echo "PG_DATA=$data"
    echo "PG_BINDIR=$bindir"
    echo "PG_RUN_AS='${run_as[*]}'"
  } > "$STATE/started"
  if ! "${psql[@]}" -c "CREATE ROLE shoprank LOGIN PASSWORD 'shoprank'" \
       -c "CREATE ROLE shoprank_reader LOGIN PASSWORD 'shoprank_reader'" \
       -c "CREATE DATABASE shoprank OWNER shoprank" >/dev/null; then
    say "could not create the test roles; Postgres tests will skip"
    stop
    return 1
  fi
  echo "SHOPRANK_TEST_POSTGRES='postgresql+psycopg://shoprank:shoprank@127.0.0.1:$port/shoprank'" >> "$ENV_FILE"
  echo "SHOPRANK_TEST_POSTGRES_READER='postgresql+psycopg://shoprank_reader:shoprank_reader@127.0.0.1:$port/shoprank'" \
    >> "$ENV_FILE"
  say "postgres $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (scratch $data)"
}

stop() {
  [ -f "$STATE/started" ] || return 0
  # shellcheck disable=SC1091
  . "$STATE/started"
  local run_as=()
  [ -n "${PG_RUN_AS:-}" ] && read -r -a run_as <<< "$PG_RUN_AS"
  "${run_as[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DATA/db" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DATA" "$STATE/started"
}

start() {
  stop  # a Postgres left by an interrupted run
  : > "$ENV_FILE"
  if [ "${SERVICES:-}" = skip ]; then
    say "SERVICES=skip: nothing installed or started; tests that need a missing service skip"
    return 0
  fi
  local need prefix
  mapfile -t need < <(missing_packages)
  if [ ${#need[@]} -gt 0 ]; then
    if prefix=$(can_install); then
      say "installing ${need[*]} (Debian packages)"
      if ! { $prefix apt-get update -qq && DEBIAN_FRONTEND=noninteractive $prefix apt-get install -y -qq \
             --no-install-recommends "${need[@]}" >/dev/null; }; then
        say "apt-get could not install ${need[*]}"
      fi
      mapfile -t need < <(missing_packages)
    fi
  fi
  if [ ${#need[@]} -gt 0 ]; then
    local command="sudo apt-get install -y ${need[*]}"
    say "missing ${need[*]}: the tests that need them will skip. Install with: $command"
    echo "SHOPRANK_TEST_INSTALL='$command'" >> "$ENV_FILE"
  fi
  for tool in terraform kubectl; do  # no registry here offers them: their tests skip where absent
    command -v "$tool" >/dev/null || say "$tool not on PATH: its infra checks will skip"
  done
  local bindir
  bindir=$(pg_bindir)
  [ -n "$bindir" ] && start_postgres "$bindir"
  command -v redis-server >/dev/null && say "redis-server $(redis-server --version | awk '{print $3}') (the tests start their own)"
  return 0
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

# ---------------------------------------------------------------------------
# Postgres roles: every application logs in as its own, least-privileged role;
# the master user's password never leaves Terraform (it only runs this file).
#
#   feast_writer  owner of the `feast` database: the pipeline writes the Feast
#                 SQL registry (feast apply, materialisation records)
#   feast_reader  the online API: CONNECT and SELECT only, also on tables Feast
#                 creates later
#   airflow       owner of the `airflow` database: the Airflow metadata DB
#
# Nobody else may connect to either database (PUBLIC's CONNECT is revoked).
# Created with the postgresql provider (configured by the zone root against
# this instance), so the first apply of a new environment runs in two steps:
# `-target=module.private_data.aws_db_instance.postgres`, then everything.
# ---------------------------------------------------------------------------
resource "random_password" "feast_registry" {
  for_each = toset(["feast_writer", "feast_reader"])

  length  = 40
  special = false
}

resource "postgresql_role" "feast_writer" {
  name            = "feast_writer"
  login           = true
  password        = random_password.feast_registry["feast_writer"].result
  superuser       = false
  create_database = false
  create_role     = false
  inherit         = false
}

resource "postgresql_role" "feast_reader" {
  name            = "feast_reader"
  login           = true
  password        = random_password.feast_registry["feast_reader"].result
  superuser       = false
  create_database = false
  create_role     = false
  inherit         = false
}

resource "postgresql_database" "feast" {
  name  = "feast"
  owner = postgresql_role.feast_writer.name
}

resource "postgresql_grant" "reader_connect" {
  database    = postgresql_database.feast.name
  role        = postgresql_role.feast_reader.name
  object_type = "database"
  privileges  = ["CONNECT"]
}

resource "postgresql_grant" "reader_schema" {
  database    = postgresql_database.feast.name
  role        = postgresql_role.feast_reader.name
  schema      = "public"
  object_type = "schema"
  privileges  = ["USAGE"]
}

resource "postgresql_grant" "reader_tables" {
  database    = postgresql_database.feast.name
  role        = postgresql_role.feast_reader.name
  schema      = "public"
  object_type = "table"
  privileges  = ["SELECT"]
}

# Tables the registry creates later (feast apply as feast_writer) are readable too.
resource "postgresql_default_privileges" "reader_future_tables" {
  database    = postgresql_database.feast.name
  role        = postgresql_role.feast_reader.name
  owner       = postgresql_role.feast_writer.name
  schema      = "public"
  object_type = "table"
  privileges  = ["SELECT"]
}

# --- Airflow metadata database ------------------------------------------------
resource "random_password" "airflow_metadata" {
  length  = 40
  special = false
}

resource "postgresql_role" "airflow" {
  name            = "airflow"
  login           = true
  password        = random_password.airflow_metadata.result
  superuser       = false
  create_database = false
  create_role     = false
  inherit         = false
}

resource "postgresql_database" "airflow" {
  name  = "airflow"
  owner = postgresql_role.airflow.name
}

# --- Only the owners (and feast_reader) connect -------------------------------
resource "postgresql_grant" "no_public_connect" {
  for_each = { feast = postgresql_database.feast.name, airflow = postgresql_database.airflow.name }

  database    = each.value
  role        = "public"
  object_type = "database"
  privileges  = []
}

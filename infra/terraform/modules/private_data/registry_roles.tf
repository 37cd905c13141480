# ---------------------------------------------------------------------------
# Least privilege on the Feast SQL registry. The pipeline writes through
# `feast_writer` (owner of the registry database); the online API reads
# through `feast_reader` (CONNECT and SELECT only, also on tables Feast creates
# later). Neither is the master user, whose password never leaves Terraform.
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

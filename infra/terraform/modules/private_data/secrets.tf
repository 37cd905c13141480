# ---------------------------------------------------------------------------
# Connection strings, in Secrets Manager (encrypted with the `service` key).
# Consumers get the ARN, never the value: in the cluster, External Secrets
# Operator syncs them into Kubernetes Secrets.
# ---------------------------------------------------------------------------

locals {
  redis_host    = aws_elasticache_replication_group.redis.primary_endpoint_address
  postgres_host = aws_db_instance.postgres.address

  secret_values = {
    # Feast online store: one connection string per client, each its own Redis user (databases.tf).
    "feast-online-store-api"     = "${local.redis_host}:6379,ssl=true,username=${aws_elasticache_user.client["api"].user_name},password=${random_password.redis_user["api"].result}"
    "feast-online-store-airflow" = "${local.redis_host}:6379,ssl=true,username=${aws_elasticache_user.client["airflow"].user_name},password=${random_password.redis_user["airflow"].result}"
    "feast-online-store-kfp"     = "${local.redis_host}:6379,ssl=true,username=${aws_elasticache_user.client["kfp"].user_name},password=${random_password.redis_user["kfp"].result}"
    # Feast SQL registry, for the pipeline (writes: feast apply, materialisation records).
    "feast-registry" = "postgresql+psycopg://${postgresql_role.feast_writer.name}:${random_password.feast_registry["feast_writer"].result}@${local.postgres_host}:5432/${postgresql_database.feast.name}?sslmode=require"
    # Feast SQL registry, read-only, for the online API (the only one mounted in public-zone API pods).
    "feast-registry-reader" = "postgresql+psycopg://${postgresql_role.feast_reader.name}:${random_password.feast_registry["feast_reader"].result}@${local.postgres_host}:5432/${postgresql_database.feast.name}?sslmode=require"
    # Airflow metadata database (sql_alchemy_conn), as its own role, never the master user.
    "airflow-metadata" = "postgresql+psycopg2://${postgresql_role.airflow.name}:${random_password.airflow_metadata.result}@${local.postgres_host}:5432/${postgresql_database.airflow.name}?sslmode=require"
  }
}

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:These are composite connection strings derived from Terraform-managed credentials; they are rotated by `terraform apply -replace=random_password...`, which changes the Redis user's or Postgres role's password and the secret in one apply. A Lambda rotator would desynchronise the Redis users.
  for_each = local.secret_values

  name                    = "shoprank/${var.name_prefix}/${each.key}"
  description             = "shoprank ${each.key} connection string"
  kms_key_id              = aws_kms_key.service.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "this" {
  for_each = local.secret_values

  secret_id     = aws_secretsmanager_secret.this[each.key].id
  secret_string = each.value
}

# ---------------------------------------------------------------------------
# The pseudonymisation key (HMAC of user ids at the private -> public
# boundary). Encrypted with the `service` key; readable only by the private
# stage (data_prep, private zone) and by the SecretStore of the online API's
# namespace, which syncs it into the one Kubernetes Secret the API mounts. The value is JSON
# {"current": ..., "next": ...}: a rotation adds `next`, re-materialises the
# online store with it, then makes it `current` (infra/README.md); Terraform
# only creates the first key and never overwrites a rotated one.
# ---------------------------------------------------------------------------
resource "random_id" "pseudonym_key" {
  byte_length = 32
}

resource "aws_secretsmanager_secret" "pseudonym_key" {
  #checkov:skip=CKV2_AWS_57:Rotation is the documented current/next procedure (the online store must be re-materialised with the new key before the API switches); an automatic Lambda rotation would break every pseudonym at once.
  name                    = "shoprank/${var.name_prefix}/pseudonym-key"
  description             = "shoprank pseudonymisation key (HMAC of user ids); current and, during a rotation, next"
  kms_key_id              = aws_kms_key.service.arn
  recovery_window_in_days = 30
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "pseudonym_key" {
  secret_id     = aws_secretsmanager_secret.pseudonym_key.id
  secret_string = jsonencode({ current = random_id.pseudonym_key.hex })

  lifecycle {
    ignore_changes = [secret_string] # rotations happen outside Terraform
  }
}

data "aws_iam_policy_document" "pseudonym_key" {
  statement {
    sid       = "OnlyTheFeatureJobAndTheApiSync"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "StringNotLike"
      variable = "aws:PrincipalArn"
      values = [
        aws_iam_role.data_prep.arn,
        "arn:${local.partition}:iam::${local.account_id}:role/${var.name_prefix}-external-secrets-shoprank",
      ]
    }
  }
}

resource "aws_secretsmanager_secret_policy" "pseudonym_key" {
  secret_arn = aws_secretsmanager_secret.pseudonym_key.arn
  policy     = data.aws_iam_policy_document.pseudonym_key.json
}

# ---------------------------------------------------------------------------
# Connection strings, in Secrets Manager (encrypted with the `service` key).
# Consumers get the ARN, never the value: in the cluster, External Secrets
# Operator syncs them into Kubernetes Secrets.
# ---------------------------------------------------------------------------

locals {
  redis_host    = aws_elasticache_replication_group.redis.primary_endpoint_address
  postgres_host = aws_db_instance.postgres.address

  secret_values = {
    # Feast Redis online store connection string.
    "feast-online-store" = "${local.redis_host}:6379,ssl=true,password=${random_password.redis_auth.result}"
    # Feast SQL registry.
    "feast-registry" = "postgresql+psycopg://${aws_db_instance.postgres.username}:${random_password.postgres_admin.result}@${local.postgres_host}:5432/feast?sslmode=require"
    # Airflow metadata database (sql_alchemy_conn).
    "airflow-metadata" = "postgresql+psycopg2://${aws_db_instance.postgres.username}:${random_password.postgres_admin.result}@${local.postgres_host}:5432/airflow?sslmode=require"
  }
}

resource "aws_secretsmanager_secret" "this" {
  #checkov:skip=CKV2_AWS_57:These are composite connection strings derived from Terraform-managed credentials; they are rotated by `terraform apply -replace=random_password...`, which changes Redis AUTH (ROTATE strategy), the Postgres password and the secret in one apply. A Lambda rotator would desynchronise Redis AUTH.
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

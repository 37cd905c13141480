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
    # The online API's shared rate-limit counters (SHOPRANK_RATE_LIMIT_REDIS): their own Redis user (databases.tf), TLS.
    "rate-limits-redis" = "rediss://${aws_elasticache_user.client["ratelimit"].user_name}:${random_password.redis_user["ratelimit"].result}@${local.redis_host}:6379/0"
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
# zone (data_prep: the private stage, and the token issuer, which makes each
# token's subject with it). Nothing in the public zone can read it, not even
# the ARN: it is not among the secret_arns handed to public_compute. The
# value is JSON {"current": ..., "next": ...}: a rotation adds `next`, the
# issuer puts the shopper's pseudonym under both keys into every token, the
# online store is re-materialised with the new key, then `next` becomes
# `current` (infra/README.md); Terraform only creates the first key and never
# overwrites a rotated one.
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
    sid       = "OnlyThePrivateZone"
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
      values   = [aws_iam_role.data_prep.arn]
    }
  }
}

resource "aws_secretsmanager_secret_policy" "pseudonym_key" {
  secret_arn = aws_secretsmanager_secret.pseudonym_key.arn
  policy     = data.aws_iam_policy_document.pseudonym_key.json
}

# ---------------------------------------------------------------------------
# The token signing key (Ed25519, PKCS8 PEM): the private zone's issuer signs
# shopper tokens with it; the API verifies them with the public half only
# (zones/public_compute var.token_public_keys). Terraform makes the secret,
# never its value, so the private key is in no Terraform state: create it in
# the private zone with `shoprank tokens keygen` and put the PEM here
# (infra/README.md). Readable by the private zone only, like the
# pseudonymisation key, and not among the secret_arns of public_compute.
# ---------------------------------------------------------------------------
resource "aws_secretsmanager_secret" "token_signing_key" {
  #checkov:skip=CKV2_AWS_57:Rotation adds a new key pair next to the old one: its public half must be trusted by the API before the issuer signs with it, which a Lambda rotation cannot order.
  name                    = "shoprank/${var.name_prefix}/token-signing-key"
  description             = "shoprank shopper-token signing key (Ed25519 private key, PEM); the public half is var.token_public_keys of public_compute"
  kms_key_id              = aws_kms_key.service.arn
  recovery_window_in_days = 30
  tags                    = local.tags
}

data "aws_iam_policy_document" "token_signing_key" {
  statement {
    sid       = "OnlyThePrivateZone"
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
      values   = [aws_iam_role.data_prep.arn]
    }
  }
}

resource "aws_secretsmanager_secret_policy" "token_signing_key" {
  secret_arn = aws_secretsmanager_secret.token_signing_key.arn
  policy     = data.aws_iam_policy_document.token_signing_key.json
}

# ---------------------------------------------------------------------------
# The online API's own secrets, of the public zone: the API pods mount them
# and neither re-identifies anyone. They sit with the other secrets so that
# each namespace's SecretStore reads one place.
#   request-id-key  the HMAC secret that signs request ids, shared by every
#                   API pod (it forges a request id, never a pseudonym);
#                   rotate with -replace=...random_password.request_id_key
#                   (request ids issued before stop linking their clicks)
#   api-keys        the hashed, scoped server-to-server keys, JSON as
#                   `shoprank api-keys` writes it; Terraform writes an empty
#                   set once and never overwrites the keys made since
# ---------------------------------------------------------------------------
resource "random_password" "request_id_key" {
  length  = 64
  special = false
}

locals {
  api_secrets = {
    "request-id-key" = "the online API's request-id signing secret (public zone)"
    "api-keys"       = "the online API's hashed server-to-server keys (JSON, managed with shoprank api-keys)"
  }
}

resource "aws_secretsmanager_secret" "api" {
  #checkov:skip=CKV2_AWS_57:The request-id key rotates with terraform apply -replace of its random_password and the API keys with shoprank api-keys create and revoke; a Lambda rotator would lock out every server-to-server caller at once.
  for_each = local.api_secrets

  name                    = "shoprank/${var.name_prefix}/${each.key}"
  description             = "shoprank ${each.value}"
  kms_key_id              = aws_kms_key.service.arn
  recovery_window_in_days = 7
  tags                    = local.tags
}

resource "aws_secretsmanager_secret_version" "request_id_key" {
  secret_id     = aws_secretsmanager_secret.api["request-id-key"].id
  secret_string = random_password.request_id_key.result
}

resource "aws_secretsmanager_secret_version" "api_keys" {
  secret_id     = aws_secretsmanager_secret.api["api-keys"].id
  secret_string = jsonencode({})

  lifecycle {
    ignore_changes = [secret_string] # keys are created and revoked with `shoprank api-keys`
  }
}

# ---------------------------------------------------------------------------
# Feast online store (Redis) and Postgres (Feast SQL registry + Airflow
# metadata). Both live in the private subnets, encrypted at rest with the
# `service` key, TLS-only, never publicly accessible. Every client logs in as
# its own user: ElastiCache RBAC users for Redis (below), Postgres roles
# (database_roles.tf). Ingress from the compute zone is granted by the `link`
# module only.
# ---------------------------------------------------------------------------

# --- Redis (Feast online store) ---------------------------------------------
resource "aws_security_group" "redis" {
  name        = "${var.name_prefix}-feast-redis"
  description = "Feast online store; ingress only from the compute node subnets (link module)"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-feast-redis" })
}

resource "aws_elasticache_subnet_group" "redis" {
  name       = "${var.name_prefix}-feast-redis"
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

# --- Redis users (ElastiCache RBAC): one per client, no shared password -------
#
# Feast's Redis layout (feast.infra.online_stores.redis): one hash per entity,
# keyed <serialised entity key><project>, with a field per feature and a
# `_ts:<view>` field per feature view. A shopper's session row (the push view
# user_session) lives in the same hash as its batch features, so key patterns
# cannot tell features from sessions apart: the commands do. The API may read
# (HMGET) and write rows the way a push does (HSET, EXPIRE), nothing else: no
# DEL, SCAN, KEYS, FLUSH* or CONFIG. The pipeline's users also delete rows of
# dropped views (SCAN, HKEYS, HDEL, DEL), as `feast apply` does.
#
# The API's rate limits (shoprank/identity/rate_limits.py) are counted here too,
# so every worker of every API pod shares one count: a fixed window per key,
# INCR + EXPIRE in one MULTI/EXEC, under keys `shoprank:rate:...`. They log in as
# their own user (`ratelimit`), which reaches those keys only and none of
# Feast's: a leaked rate-limit connection string reads no feature row.
locals {
  feast_project   = "shoprank" # shoprank/features/store.py PROJECT: the suffix of every key
  feast_keys      = "~*${local.feast_project}"
  pipeline_acl    = "on ${local.feast_keys} -@all +hmget +hset +expire +hkeys +hdel +del +scan +ping"
  rate_limit_keys = "~shoprank:rate:*" # RateLimiter's prefix

  redis_users = {
    api       = { access = "on ${local.feast_keys} -@all +hmget +hset +expire +ping" }
    airflow   = { access = local.pipeline_acl }
    kfp       = { access = local.pipeline_acl }
    ratelimit = { access = "on ${local.rate_limit_keys} -@all +incr +expire +multi +exec +discard +ping" }
  }
}

resource "random_password" "redis_user" {
  for_each = toset(concat(keys(local.redis_users), ["default"]))

  length  = 64
  special = false
}

# Every user group needs a user named "default": this one is switched off.
resource "aws_elasticache_user" "default" {
  user_id       = "${var.name_prefix}-default-off"
  user_name     = "default"
  access_string = "off -@all"
  engine        = "redis"

  authentication_mode {
    type      = "password"
    passwords = [random_password.redis_user["default"].result]
  }

  tags = local.tags
}

resource "aws_elasticache_user" "client" {
  for_each = local.redis_users

  user_id       = "${var.name_prefix}-feast-${each.key}"
  user_name     = "feast-${each.key}"
  access_string = each.value.access
  engine        = "redis"

  authentication_mode {
    type      = "password"
    passwords = [random_password.redis_user[each.key].result]
  }

  tags = local.tags
}

resource "aws_elasticache_user_group" "feast" {
  engine        = "redis"
  user_group_id = "${var.name_prefix}-feast"
  user_ids      = concat([aws_elasticache_user.default.user_id], [for u in aws_elasticache_user.client : u.user_id])
  tags          = local.tags
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = "${var.name_prefix}-feast"
  description          = "Feast online store for ${var.name_prefix}"
  engine               = "redis"
  engine_version       = "7.1"
  node_type            = var.redis_node_type
  port                 = 6379
  num_cache_clusters   = var.redis_num_nodes
  parameter_group_name = "default.redis7"

  subnet_group_name  = aws_elasticache_subnet_group.redis.name
  security_group_ids = [aws_security_group.redis.id]

  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.service.arn
  transit_encryption_enabled = true
  transit_encryption_mode    = "required"
  # RBAC: the users above, each with its own password (no AUTH token: the two exclude each other).
  user_group_ids = [aws_elasticache_user_group.feast.user_group_id]

  snapshot_retention_limit   = var.backup_retention_days
  auto_minor_version_upgrade = true
  apply_immediately          = var.environment != "prod"

  tags = local.tags
}

# --- Postgres (Feast SQL registry, Airflow metadata) ------------------------
resource "aws_security_group" "postgres" {
  name        = "${var.name_prefix}-postgres"
  description = "Feast registry and Airflow metadata; ingress from edge workers and (link module) compute nodes"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-postgres" })
}

resource "aws_vpc_security_group_ingress_rule" "postgres_from_edge_workers" {
  security_group_id            = aws_security_group.postgres.id
  description                  = "Postgres from the private-zone edge workers (Terraform's postgresql provider)"
  referenced_security_group_id = aws_security_group.edge_workers.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_subnet_group" "postgres" {
  name       = "${var.name_prefix}-postgres"
  subnet_ids = aws_subnet.private[*].id
  tags       = local.tags
}

resource "aws_db_parameter_group" "postgres" {
  name   = "${var.name_prefix}-postgres${split(".", var.postgres_engine_version)[0]}"
  family = "postgres${split(".", var.postgres_engine_version)[0]}"

  # TLS is mandatory for every client.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Query logging without statement parameters (no personal data in logs).
  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  tags = local.tags
}

resource "random_password" "postgres_admin" {
  length  = 40
  special = false
}

resource "aws_cloudwatch_log_group" "postgres" {
  for_each = toset(["postgresql", "upgrade"])

  name              = "/aws/rds/instance/${var.name_prefix}-postgres/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.service.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name_prefix}-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "postgres" {
  #checkov:skip=CKV_AWS_157:Multi-AZ is chosen per environment (var.postgres_multi_az): dev runs single-AZ to halve cost; the variable's validation makes it mandatory in prod.
  identifier     = "${var.name_prefix}-postgres"
  engine         = "postgres"
  engine_version = var.postgres_engine_version
  instance_class = var.postgres_instance_class

  allocated_storage     = var.postgres_allocated_storage_gb
  max_allocated_storage = var.postgres_allocated_storage_gb * 4
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.service.arn

  db_name  = "shoprank"
  username = "shoprank_admin"
  password = random_password.postgres_admin.result
  port     = 5432

  db_subnet_group_name                = aws_db_subnet_group.postgres.name
  vpc_security_group_ids              = [aws_security_group.postgres.id]
  publicly_accessible                 = false
  iam_database_authentication_enabled = true
  parameter_group_name                = aws_db_parameter_group.postgres.name

  multi_az                  = var.postgres_multi_az
  deletion_protection       = var.deletion_protection
  backup_retention_period   = var.backup_retention_days
  copy_tags_to_snapshot     = true
  skip_final_snapshot       = false
  final_snapshot_identifier = "${var.name_prefix}-postgres-final"

  auto_minor_version_upgrade      = true
  enabled_cloudwatch_logs_exports = ["postgresql", "upgrade"]
  monitoring_interval             = 60
  monitoring_role_arn             = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled    = true
  performance_insights_kms_key_id = aws_kms_key.service.arn

  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.postgres]
}

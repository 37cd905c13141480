# ---------------------------------------------------------------------------
# Customer-managed keys. Data classes never share a key, so a grant on one
# key can never decrypt another class:
#   restricted : raw/ and curated/ buckets, private-zone logs.  Never granted
#                to any public-zone principal.
#   shared     : features/, models/, registry/, pipelines/ buckets: the data
#                that may cross the link.
#   service    : Redis, Postgres, Secrets Manager.
# ---------------------------------------------------------------------------

module "kms_policy" {
  source = "../kms_policy"

  log_group_patterns = {
    restricted = "/shoprank/${var.name_prefix}/private-data/*"
    service    = "/aws/rds/instance/${var.name_prefix}-*"
  }
}

resource "aws_kms_key" "restricted" {
  description             = "${var.name_prefix}: raw and curated personal data (private zone only)"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      module.kms_policy.account_administration,
      module.kms_policy.cloudwatch_logs["restricted"],
      # The edge workers' Auto Scaling group launches instances whose EBS
      # volumes (scratch copies of raw data) are encrypted with this key.
      module.kms_policy.autoscaling_volumes,
    ]
  })

  tags = merge(local.tags, { "shoprank:data-class" = "restricted" })
}

resource "aws_kms_alias" "restricted" {
  name          = "alias/${var.name_prefix}-restricted"
  target_key_id = aws_kms_key.restricted.key_id
}

resource "aws_kms_key" "shared" {
  description             = "${var.name_prefix}: pseudonymised features, models, registry, pipeline artifacts (may cross the link)"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = jsonencode({ Version = "2012-10-17", Statement = [module.kms_policy.account_administration] })
  tags                    = merge(local.tags, { "shoprank:data-class" = "shared" })
}

resource "aws_kms_alias" "shared" {
  name          = "alias/${var.name_prefix}-shared"
  target_key_id = aws_kms_key.shared.key_id
}

resource "aws_kms_key" "service" {
  description             = "${var.name_prefix}: Redis, Postgres and Secrets Manager at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [module.kms_policy.account_administration, module.kms_policy.cloudwatch_logs["service"]]
  })

  tags = merge(local.tags, { "shoprank:data-class" = "service" })
}

resource "aws_kms_alias" "service" {
  name          = "alias/${var.name_prefix}-service"
  target_key_id = aws_kms_key.service.key_id
}

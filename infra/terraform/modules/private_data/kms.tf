# ---------------------------------------------------------------------------
# Customer-managed keys. Data classes never share a key, so a grant on one
# key can never decrypt another class:
#   restricted : raw/ and curated/ buckets, private-zone logs.  Never granted
#                to any public-zone principal.
#   shared     : features/, models/, registry/, pipelines/ buckets: the data
#                that may cross the link.
#   service    : Redis, Postgres, Secrets Manager.
# ---------------------------------------------------------------------------

locals {
  kms_root_statement = {
    Sid       = "AccountAdministration"
    Effect    = "Allow"
    Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
    Action    = "kms:*"
    Resource  = "*"
  }
}

resource "aws_kms_key" "restricted" {
  description             = "${var.name_prefix}: raw and curated personal data (private zone only)"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.kms_root_statement,
      {
        Sid       = "CloudWatchLogsForThisZone"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/shoprank/${var.name_prefix}/private-data/*" }
        }
      },
      {
        # The edge workers' Auto Scaling group launches instances whose EBS
        # volumes (scratch copies of raw data) are encrypted with this key.
        Sid    = "AutoScalingEncryptedVolumes"
        Effect = "Allow"
        # Matched by ARN in a condition: the service-linked role may not exist
        # yet when this key is created (a key policy naming it would fail).
        Principal = { AWS = "*" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
        Resource  = "*"
        Condition = {
          StringEquals = { "kms:CallerAccount" = local.account_id }
          ArnLike      = { "aws:PrincipalArn" = "arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling" }
        }
      },
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
  policy                  = jsonencode({ Version = "2012-10-17", Statement = [local.kms_root_statement] })
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
    Version = "2012-10-17"
    Statement = [
      local.kms_root_statement,
      {
        Sid       = "CloudWatchLogsForThisZone"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws/rds/instance/${var.name_prefix}-*" }
        }
      },
    ]
  })

  tags = merge(local.tags, { "shoprank:data-class" = "service" })
}

resource "aws_kms_alias" "service" {
  name          = "alias/${var.name_prefix}-service"
  target_key_id = aws_kms_key.service.key_id
}

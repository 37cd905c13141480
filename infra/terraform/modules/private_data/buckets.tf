# ---------------------------------------------------------------------------
# Buckets: THE DATA-CLASS TABLE.
#
# The app's key layout is raw/, curated/, features/, models/<name>/<version>/,
# reports/, registry/. Each class gets its own bucket, key and endpoint list:
#
#   bucket     holds                              may cross the link?
#   raw        raw/  (events with PII)             NO  - gateway endpoint only
#   curated    curated/ (+ features/, reports/     NO  - gateway endpoint only
#              as written by the private runs)
#   features   features/ (pseudonymised, Feast     yes - replicated from curated
#              offline sources), reports/
#   models     models/<name>/<version>/            yes
#   registry   registry/ (Feast registry files)    yes
#   pipelines  KFP pipeline root                   yes
#
# "crosses_link = false" buckets only accept requests that arrive through the
# S3 *gateway* endpoint, which only private-zone route tables use. The S3
# *interface* endpoint that the compute zone reaches over the link is allowed
# on shareable buckets only, and its endpoint policy repeats that list.
# ---------------------------------------------------------------------------

locals {
  buckets = {
    raw       = { crosses_link = false, kms = "restricted", expiration_days = var.raw_retention_days }
    curated   = { crosses_link = false, kms = "restricted", expiration_days = var.curated_retention_days }
    features  = { crosses_link = true, kms = "shared", expiration_days = null }
    models    = { crosses_link = true, kms = "shared", expiration_days = null }
    registry  = { crosses_link = true, kms = "shared", expiration_days = null }
    pipelines = { crosses_link = true, kms = "shared", expiration_days = 180 }
  }

  kms_arns = {
    restricted = aws_kms_key.restricted.arn
    shared     = aws_kms_key.shared.arn
  }

  bucket_names = { for k, _ in local.buckets : k => "${var.name_prefix}-${k}-${local.account_id}" }
  bucket_arns  = { for k, n in local.bucket_names : k => "arn:${local.partition}:s3:::${n}" }

  private_bucket_keys   = sort([for k, b in local.buckets : k if !b.crosses_link])
  shareable_bucket_keys = sort([for k, b in local.buckets : k if b.crosses_link])

  # THE EXPORT RULE: the only data that leaves a private bucket is the
  # features/ prefix of `curated` (pseudonymised by the private pipeline),
  # replicated into the shareable `features` bucket.
  export = {
    source      = "curated"
    prefix      = "features/"
    destination = "features"
  }
}

module "bucket" {
  source   = "../secure_bucket"
  for_each = local.buckets

  name                 = local.bucket_names[each.key]
  kms_key_arn          = local.kms_arns[each.value.kms]
  expiration_days      = each.value.expiration_days
  admin_principal_arns = concat(var.admin_principal_arns, [aws_iam_role.replication.arn])
  allowed_vpce_ids = (each.value.crosses_link
    ? [aws_vpc_endpoint.s3_gateway.id, aws_vpc_endpoint.s3_link.id]
    : [aws_vpc_endpoint.s3_gateway.id]
  )

  replication = each.key != local.export.source ? null : {
    role_arn                = aws_iam_role.replication.arn
    prefix                  = local.export.prefix
    destination_bucket_arn  = local.bucket_arns[local.export.destination]
    destination_kms_key_arn = local.kms_arns[local.buckets[local.export.destination].kms]
  }

  tags = merge(local.tags, { "shoprank:data-class" = each.key, "shoprank:crosses-link" = tostring(each.value.crosses_link) })
}

# --- Replication role (used by S3 itself) -----------------------------------
data "aws_iam_policy_document" "replication_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "replication" {
  name               = "${var.name_prefix}-export-features"
  assume_role_policy = data.aws_iam_policy_document.replication_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "replication" {
  statement {
    sid       = "ReadSourceConfig"
    actions   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
    resources = [local.bucket_arns[local.export.source]]
  }

  statement {
    sid       = "ReadExportPrefixOnly"
    actions   = ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"]
    resources = ["${local.bucket_arns[local.export.source]}/${local.export.prefix}*"]
  }

  statement {
    sid       = "WriteDestinationPrefixOnly"
    actions   = ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
    resources = ["${local.bucket_arns[local.export.destination]}/${local.export.prefix}*"]
  }

  statement {
    sid       = "DecryptSource"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.restricted.arn]
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = ["${local.bucket_arns[local.export.source]}/${local.export.prefix}*"]
    }
  }

  statement {
    sid       = "EncryptDestination"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.shared.arn]
    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = ["${local.bucket_arns[local.export.destination]}/${local.export.prefix}*"]
    }
  }
}

resource "aws_iam_role_policy" "replication" {
  name   = "export-features-prefix"
  role   = aws_iam_role.replication.id
  policy = data.aws_iam_policy_document.replication.json
}

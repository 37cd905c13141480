# ---------------------------------------------------------------------------
# Buckets: THE DATA-CLASS TABLE.
#
# Which key prefix holds which data class (raw, pseudonymised, none) is
# declared in infra/policy/access.json (`prefixes`); each class of bucket gets
# its own bucket, key and endpoint list:
#
#   bucket     holds                              may cross the link?
#   raw        raw/  (the shop's exports)          NO  - gateway endpoint only
#   curated    curated/, served/, state/ (raw     NO  - gateway endpoint only
#              ids), features/crossing/ as the
#              private stage writes it, locks/
#   features   features/ (pseudonymised: the      yes - features/crossing/ is
#              crossing, derived features)              replicated from curated
#   models     models/<name>/<version>/            yes
#   registry   registry/ (Feast registry files)    yes
#   pipelines  kfp/ (the KFP pipeline root)        yes - expires after 30 days
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
  # features/crossing/ prefix of `curated` (pseudonymised by the private stage;
  # access.json declares it pseudonymised, exported from curated), replicated
  # into the shareable `features` bucket.
  export = {
    source      = "curated"
    prefix      = "features/crossing/"
    destination = "features"
  }

  # Shorter retention under one prefix of a bucket. The KFP pipeline root holds
  # every artifact of every run, and the runs from before the zone split wrote
  # raw rows into it: its expiry (current objects, then their old versions) is
  # the bound on how long those copies live. New runs only see pseudonymised
  # data (zone rule R16).
  # Event-log segments the roll quarantined are copies an erasure does not
  # reach at once (docs/privacy.md): they expire after 14 days.
  prefix_expirations = [
    { bucket = "pipelines", prefix = "kfp/", days = var.kfp_root_retention_days, noncurrent_days = 7 },
    { bucket = "features", prefix = "served/quarantine/", days = 14, noncurrent_days = 7 },
  ]
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

  prefix_expirations = [
    for e in local.prefix_expirations : { prefix = e.prefix, days = e.days, noncurrent_days = e.noncurrent_days }
    if e.bucket == each.key
  ]

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

# ---------------------------------------------------------------------------
# secure_bucket: the ONLY way shoprank creates an S3 bucket.
#
# Every bucket gets, without exception:
#   * SSE-KMS with a customer-managed key (bucket key enabled)
#   * versioning
#   * all four public-access-block switches on, and BucketOwnerEnforced
#   * a policy that denies (a) any request without TLS and (b) any data-plane
#     request that does not arrive through one of `allowed_vpce_ids`
#   * lifecycle: expiry of old versions, optional retention of current ones,
#     optional shorter retention under given prefixes
#   * no server access logs: see the skip reason on aws_s3_bucket.this
# The zone rules in infra/policy/zone_rules.py assert all of the above.
# ---------------------------------------------------------------------------

data "aws_partition" "current" {}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Cross-region replication is a DR decision per bucket; the data must stay in one region (residency of personal data), only the features/ prefix is replicated, in-region, to the shareable bucket.
  #checkov:skip=CKV_AWS_18:S3 server access logs cannot be delivered to an SSE-KMS bucket, and every bucket here must be SSE-KMS; object access is audited with CloudTrail S3 data events (organisation trail owned by the security account).
  #checkov:skip=CKV2_AWS_62:No consumer listens to object events; pipelines are scheduled by Airflow, so event notifications would be an unused fan-out.
  bucket = var.name
  tags   = var.tags
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "retention"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    dynamic "expiration" {
      for_each = var.expiration_days == null ? [] : [var.expiration_days]
      content {
        days = expiration.value
      }
    }
  }

  # Shorter retention under a prefix (the earlier expiry wins where rules overlap).
  dynamic "rule" {
    for_each = var.prefix_expirations
    content {
      id     = "expire-${trimsuffix(rule.value.prefix, "/")}"
      status = "Enabled"

      filter {
        prefix = rule.value.prefix
      }

      abort_incomplete_multipart_upload {
        days_after_initiation = 7
      }

      expiration {
        days = rule.value.days
      }

      noncurrent_version_expiration {
        noncurrent_days = rule.value.noncurrent_days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "this" {
  # (a) TLS only, for everybody.
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # (b) Data plane only through the allowed VPC endpoints. Admin principals
  #     (Terraform) keep control-plane access to fix a broken policy.
  statement {
    sid       = "DenyOutsideAllowedVpcEndpoints"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEquals"
      variable = "aws:SourceVpce"
      values   = var.allowed_vpce_ids
    }

    condition {
      test     = "ArnNotLike"
      variable = "aws:PrincipalArn"
      values   = concat(var.admin_principal_arns, ["arn:${data.aws_partition.current.partition}:iam::*:role/aws-service-role/*"])
    }

    # S3 replication and log delivery are performed by AWS services, not from a VPC.
    condition {
      test     = "Bool"
      variable = "aws:PrincipalIsAWSService"
      values   = ["false"]
    }
  }

  # (c) No object may be written without the zone's KMS key.
  statement {
    sid       = "DenyWrongKmsKey"
    effect    = "Deny"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "StringNotEqualsIfExists"
      variable = "s3:x-amz-server-side-encryption-aws-kms-key-id"
      values   = [var.kms_key_arn]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.this.json

  depends_on = [aws_s3_bucket_public_access_block.this]
}

# Replication of a single prefix: the one, reviewable path by which data
# leaves a private bucket (see private_data/buckets.tf).
resource "aws_s3_bucket_replication_configuration" "this" {
  count = var.replication == null ? 0 : 1

  bucket = aws_s3_bucket.this.id
  role   = var.replication.role_arn

  rule {
    id       = "export-${trimsuffix(var.replication.prefix, "/")}"
    status   = "Enabled"
    priority = 1

    filter {
      prefix = var.replication.prefix
    }

    delete_marker_replication {
      status = "Enabled"
    }

    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }

    destination {
      bucket        = var.replication.destination_bucket_arn
      storage_class = var.replication.destination_storage_class

      encryption_configuration {
        replica_kms_key_id = var.replication.destination_kms_key_arn
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

# ---------------------------------------------------------------------------
# Private-zone compute: Airflow EDGE WORKERS.
#
# The DAG tasks that touch raw data (ingest, Great Expectations validation,
# publication of curated/, the served-event roll, pseudonymisation into
# features/crossing/) run on the Airflow EdgeExecutor queue `private-data`.
# Edge workers live here, in the private subnets, under the `data_prep` role:
# the ONLY principal that can read raw/. Its S3 grants are the `data_prep`
# role of infra/policy/access.json, the same declaration the public zone's
# IRSA roles come from. The workers pull work from the Airflow API server in
# the compute zone (private -> compute, port 8080, opened by `link`).
# ---------------------------------------------------------------------------

locals {
  access    = jsondecode(file("${path.module}/../../../policy/access.json"))
  data_prep = local.access.roles.data_prep

  # bucket => every prefix data_prep reads or writes there, for ListBucket.
  data_prep_list_prefixes = {
    for b in distinct(concat(keys(local.data_prep.read), keys(local.data_prep.write))) :
    b => distinct(concat(lookup(local.data_prep.read, b, []), lookup(local.data_prep.write, b, [])))
  }
  # The KMS keys of the buckets it touches.
  data_prep_kms_arns = distinct([for b in keys(local.data_prep_list_prefixes) : local.kms_arns[local.buckets[b].kms]])
}

resource "aws_security_group" "edge_workers" {
  name        = "${var.name_prefix}-edge-workers"
  description = "Airflow edge workers (raw data tasks); no ingress"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-edge-workers" })
}

resource "aws_vpc_security_group_egress_rule" "edge_workers_https" {
  security_group_id = aws_security_group.edge_workers.id
  description       = "HTTPS to VPC endpoints (S3, STS, KMS, Secrets Manager, ECR, SSM)"
  cidr_ipv4         = aws_vpc.this.cidr_block
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "edge_workers_s3_gateway" {
  security_group_id = aws_security_group.edge_workers.id
  description       = "HTTPS to S3 through the gateway endpoint"
  prefix_list_id    = aws_vpc_endpoint.s3_gateway.prefix_list_id
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "edge_workers_postgres" {
  security_group_id            = aws_security_group.edge_workers.id
  description                  = "Postgres: Terraform's postgresql provider when run from an edge worker (database roles)"
  referenced_security_group_id = aws_security_group.postgres.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "data_prep" {
  name               = "${var.name_prefix}-data-prep"
  description        = "Private zone only: the one role that reads raw/ (Airflow edge workers)"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "data_prep" {
  # S3: exactly the grants of roles.data_prep in access.json, listing included.
  dynamic "statement" {
    for_each = local.data_prep_list_prefixes
    content {
      sid       = "List${title(statement.key)}"
      actions   = ["s3:ListBucket"]
      resources = [local.bucket_arns[statement.key]]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [for p in statement.value : "${p}*"]
      }
    }
  }

  statement {
    sid       = "LocateBuckets"
    actions   = ["s3:GetBucketLocation"]
    resources = [for b in keys(local.data_prep_list_prefixes) : local.bucket_arns[b]]
  }

  dynamic "statement" {
    for_each = local.data_prep.read
    content {
      sid       = "Read${title(statement.key)}"
      actions   = ["s3:GetObject", "s3:GetObjectVersion"]
      resources = [for p in statement.value : "${local.bucket_arns[statement.key]}/${p}*"]
    }
  }

  dynamic "statement" {
    for_each = local.data_prep.write
    content {
      sid       = "Write${title(statement.key)}"
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
      resources = [for p in statement.value : "${local.bucket_arns[statement.key]}/${p}*"]
    }
  }

  statement {
    sid       = "UseBucketKeys"
    actions   = length(local.data_prep.write) > 0 ? ["kms:Decrypt", "kms:GenerateDataKey"] : ["kms:Decrypt"]
    resources = local.data_prep_kms_arns
  }

  # The private stage pseudonymises user ids here, at the boundary, and the
  # token issuer signs shoppers' tokens here: the two keys the public zone
  # never holds.
  statement {
    sid       = "ReadPrivateZoneKeys"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_secretsmanager_secret.pseudonym_key.arn, aws_secretsmanager_secret.token_signing_key.arn]
  }

  statement {
    sid       = "DecryptServiceSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.service.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "data_prep" {
  name   = "private-data-prep"
  role   = aws_iam_role.data_prep.id
  policy = data.aws_iam_policy_document.data_prep.json
}

resource "aws_iam_role_policy_attachment" "data_prep_ssm" {
  role       = aws_iam_role.data_prep.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy_attachment" "data_prep_ecr" {
  role       = aws_iam_role.data_prep.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
}

resource "aws_iam_instance_profile" "data_prep" {
  name = "${var.name_prefix}-data-prep"
  role = aws_iam_role.data_prep.name
  tags = local.tags
}

resource "aws_launch_template" "edge_workers" {
  count = var.edge_worker_ami_id == null ? 0 : 1

  name_prefix   = "${var.name_prefix}-edge-"
  image_id      = var.edge_worker_ami_id
  instance_type = var.edge_worker_instance_type

  iam_instance_profile {
    arn = aws_iam_instance_profile.data_prep.arn
  }

  network_interfaces {
    associate_public_ip_address = false
    security_groups             = [aws_security_group.edge_workers.id]
  }

  # IMDSv2 only, one hop: containers cannot borrow the instance role.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 100
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.restricted.arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name_prefix}-edge-worker", "shoprank:airflow-queue" = "private-data" })
  }

  tags = local.tags
}

resource "aws_autoscaling_group" "edge_workers" {
  count = var.edge_worker_ami_id == null ? 0 : 1

  name                = "${var.name_prefix}-edge-workers"
  vpc_zone_identifier = aws_subnet.private[*].id
  min_size            = var.edge_worker_count
  max_size            = var.edge_worker_count
  desired_capacity    = var.edge_worker_count

  launch_template {
    id      = aws_launch_template.edge_workers[0].id
    version = "$Latest"
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = "${var.name_prefix}-edge-worker" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
}

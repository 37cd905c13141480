# ---------------------------------------------------------------------------
# VPC endpoints: the private zone's only way to AWS APIs.
#   s3_gateway : used by private-zone subnets (route table).  All buckets.
#   s3_link    : S3 interface endpoint that the compute zone reaches over the
#                link (port 443 only; SG rules added by `link`). Its endpoint
#                policy allows the SHAREABLE buckets only.
#   interface  : sts, kms, secretsmanager, logs, ecr, ssm for edge workers.
#                Each has a policy: this account's principals only, and only
#                the actions the edge workers (and SSM sessions to them) use,
#                on this account's resources where the action has one.
# ---------------------------------------------------------------------------

locals {
  # endpoint => statements (actions on resources), for this account's principals.
  interface_endpoints = {
    sts = [
      { actions = ["sts:GetCallerIdentity"], resources = ["*"] },
      { actions = ["sts:AssumeRole", "sts:TagSession"], resources = ["arn:${local.partition}:iam::${local.account_id}:role/*"] },
    ]
    kms = [
      { actions = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"], resources = ["arn:${local.partition}:kms:${local.region}:${local.account_id}:key/*"] },
    ]
    secretsmanager = [
      { actions = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], resources = ["arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:shoprank/${var.name_prefix}/*"] },
    ]
    logs = [
      { actions = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"], resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/shoprank/${var.name_prefix}/*"] },
    ]
    "ecr.api" = [
      { actions = ["ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"], resources = ["*"] },
    ]
    "ecr.dkr" = [
      { actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"], resources = ["*"] },
    ]
    # The SSM agent (the actions of AmazonSSMManagedInstanceCore) and Session Manager.
    ssm = [
      {
        actions = [
          "ssm:DescribeAssociation", "ssm:GetDeployablePatchSnapshotForInstance", "ssm:GetDocument", "ssm:DescribeDocument",
          "ssm:GetManifest", "ssm:GetParameter", "ssm:GetParameters", "ssm:ListAssociations", "ssm:ListInstanceAssociations",
          "ssm:PutInventory", "ssm:PutComplianceItems", "ssm:PutConfigurePackageResult", "ssm:UpdateAssociationStatus",
          "ssm:UpdateInstanceAssociationStatus", "ssm:UpdateInstanceInformation",
        ]
        resources = ["*"]
      },
    ]
    ssmmessages = [
      { actions = ["ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel"], resources = ["*"] },
    ]
    ec2messages = [
      { actions = ["ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage", "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply"], resources = ["*"] },
    ]
  }

  # AWS-owned bucket that serves ECR image layers to the edge workers.
  ecr_layer_bucket_arn = "arn:${local.partition}:s3:::prod-${local.region}-starport-layer-bucket"
}

data "aws_iam_policy_document" "s3_gateway_endpoint" {
  #checkov:skip=CKV_AWS_283:The EcrImageLayers statement must allow any principal: ECR hands out image layers as presigned URLs of the AWS-owned layer bucket; its resource list is that one bucket, read-only. The data buckets statement is limited to this account's principals.
  statement {
    sid       = "ZoneBucketsThisAccountOnly"
    actions   = ["s3:*"]
    resources = flatten([for a in values(local.bucket_arns) : [a, "${a}/*"]])
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "EcrImageLayers"
    actions   = ["s3:GetObject"]
    resources = ["${local.ecr_layer_bucket_arn}/*"]
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
  }
}

resource "aws_vpc_endpoint" "s3_gateway" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
  policy            = data.aws_iam_policy_document.s3_gateway_endpoint.json
  tags              = merge(local.tags, { Name = "${var.name_prefix}-s3-gateway" })
}

# --- S3 interface endpoint reached from the compute zone over the link ------
resource "aws_security_group" "s3_link" {
  name        = "${var.name_prefix}-s3-link-endpoint"
  description = "S3 interface endpoint for the compute zone; ingress rules are owned by the link module"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-s3-link-endpoint" })
}

data "aws_iam_policy_document" "s3_link_endpoint" {
  statement {
    sid = "ShareableBucketsOnly"
    actions = [
      "s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject",
      "s3:ListBucket", "s3:GetBucketLocation", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ]
    resources = flatten([for k in local.shareable_bucket_keys : [local.bucket_arns[k], "${local.bucket_arns[k]}/*"]])
    principals {
      type        = "AWS"
      identifiers = ["*"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:PrincipalAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_vpc_endpoint" "s3_link" {
  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.s3_link.id]
  private_dns_enabled = false
  policy              = data.aws_iam_policy_document.s3_link_endpoint.json
  tags                = merge(local.tags, { Name = "${var.name_prefix}-s3-link" })
}

# --- Interface endpoints for AWS APIs used inside the zone ------------------
resource "aws_security_group" "endpoints" {
  name        = "${var.name_prefix}-private-endpoints"
  description = "Interface endpoints of the private zone: HTTPS from inside the zone only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-private-endpoints" })
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  security_group_id = aws_security_group.endpoints.id
  description       = "HTTPS to AWS API endpoints from the private VPC"
  cidr_ipv4         = aws_vpc.this.cidr_block
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

data "aws_iam_policy_document" "interface_endpoint" {
  for_each = local.interface_endpoints

  dynamic "statement" {
    for_each = each.value
    content {
      sid       = "ThisAccountOnly${statement.key}"
      actions   = statement.value.actions
      resources = statement.value.resources
      principals {
        type        = "AWS"
        identifiers = ["*"]
      }
      condition {
        test     = "StringEquals"
        variable = "aws:PrincipalAccount"
        values   = [local.account_id]
      }
    }
  }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.interface_endpoints

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.private[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true
  policy              = data.aws_iam_policy_document.interface_endpoint[each.key].json
  tags                = merge(local.tags, { Name = "${var.name_prefix}-${each.key}" })
}

# ---------------------------------------------------------------------------
# Public compute zone network.
#   public subnets : NAT gateways only (no instance gets a public IP)
#   node subnets   : EKS nodes, pods, internal load balancers; egress to the
#                    internet through NAT (images, GPU drivers), and to the data
#                    zone through the peering added by `link`.
# ---------------------------------------------------------------------------

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  tags       = merge(var.tags, { "shoprank:zone" = "public-compute", "shoprank:environment" = var.environment })
  nat_count  = var.single_nat_gateway ? 1 : length(var.availability_zones)
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = "${var.name_prefix}-compute" })
}

resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${var.name_prefix}-compute-default-deny" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${var.name_prefix}-compute" })
}

resource "aws_subnet" "public" {
  count = length(var.public_subnet_cidrs)

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.public_subnet_cidrs[count.index]
  availability_zone       = var.availability_zones[count.index]
  map_public_ip_on_launch = false
  tags                    = merge(local.tags, { Name = "${var.name_prefix}-nat-${var.availability_zones[count.index]}", "shoprank:tier" = "nat" })
}

resource "aws_subnet" "nodes" {
  count = length(var.node_subnet_cidrs)

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.node_subnet_cidrs[count.index]
  availability_zone       = var.availability_zones[count.index]
  map_public_ip_on_launch = false

  tags = merge(local.tags, {
    Name                                       = "${var.name_prefix}-nodes-${var.availability_zones[count.index]}"
    "shoprank:tier"                            = "nodes"
    "kubernetes.io/role/internal-elb"          = "1"
    "kubernetes.io/cluster/${var.name_prefix}" = "shared"
  })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${var.name_prefix}-nat" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = length(aws_subnet.public)

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  count = local.nat_count

  domain = "vpc"
  tags   = merge(local.tags, { Name = "${var.name_prefix}-nat-${count.index}" })
}

resource "aws_nat_gateway" "this" {
  count = local.nat_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id
  tags          = merge(local.tags, { Name = "${var.name_prefix}-nat-${count.index}" })

  depends_on = [aws_internet_gateway.this]
}

# One route table per node subnet so each AZ uses its own NAT (when not single).
resource "aws_route_table" "nodes" {
  count = length(aws_subnet.nodes)

  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${var.name_prefix}-nodes-${count.index}" })
}

resource "aws_route" "nodes_internet" {
  count = length(aws_route_table.nodes)

  route_table_id         = aws_route_table.nodes[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.single_nat_gateway ? 0 : count.index].id
}

resource "aws_route_table_association" "nodes" {
  count = length(aws_subnet.nodes)

  subnet_id      = aws_subnet.nodes[count.index].id
  route_table_id = aws_route_table.nodes[count.index].id
}

# S3 gateway endpoint restricted to what the nodes need from S3 directly (ECR
# image layers). Data buckets are NOT reachable this way:
# workloads use the data zone's S3 interface endpoint over the link.
data "aws_iam_policy_document" "s3_gateway_endpoint" {
  #checkov:skip=CKV_AWS_283:Any principal is required: ECR hands out image layers as presigned URLs of the AWS-owned layer bucket. The policy's only resource is that bucket, read-only, so the endpoint cannot reach any data bucket.
  statement {
    sid       = "EcrImageLayersOnly"
    actions   = ["s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::prod-${local.region}-starport-layer-bucket/*"]
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
  route_table_ids   = aws_route_table.nodes[*].id
  policy            = data.aws_iam_policy_document.s3_gateway_endpoint.json
  tags              = merge(local.tags, { Name = "${var.name_prefix}-compute-s3-gateway" })
}

# --- Interface endpoints for the AWS APIs that pods call ---------------------
# STS (IRSA web identity) and CloudWatch Logs (Airflow task logs) inside the
# VPC, so that the pods' NetworkPolicies (infra/k8s) allow HTTPS to this VPC
# and to the data zone's S3 endpoint only, never to the internet. Each
# endpoint's policy allows this account's roles and log groups only.
locals {
  compute_endpoints = {
    sts = [
      { sid = "ThisAccountsRoles", actions = ["sts:AssumeRoleWithWebIdentity"], resources = ["arn:${local.partition}:iam::${local.account_id}:role/${var.name_prefix}-*"], account_condition = false },
      { sid = "WhoAmI", actions = ["sts:GetCallerIdentity"], resources = ["*"], account_condition = true },
    ]
    logs = [
      { sid = "ThisZonesLogGroups", actions = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:GetLogEvents", "logs:DescribeLogStreams"], resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/shoprank/${var.name_prefix}/*"], account_condition = true },
    ]
  }
}

resource "aws_security_group" "endpoints" {
  name        = "${var.name_prefix}-compute-endpoints"
  description = "Interface endpoints of the compute zone: HTTPS from the node subnets only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${var.name_prefix}-compute-endpoints" })
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  for_each = toset(var.node_subnet_cidrs)

  security_group_id = aws_security_group.endpoints.id
  description       = "HTTPS to the AWS API endpoints from node subnet ${each.value}"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

data "aws_iam_policy_document" "compute_endpoint" {
  for_each = local.compute_endpoints

  dynamic "statement" {
    for_each = each.value
    content {
      sid       = statement.value.sid
      actions   = statement.value.actions
      resources = statement.value.resources
      principals {
        type        = "*"
        identifiers = ["*"]
      }
      dynamic "condition" {
        for_each = statement.value.account_condition ? [1] : []
        content {
          test     = "StringEquals"
          variable = "aws:PrincipalAccount"
          values   = [local.account_id]
        }
      }
    }
  }
}

resource "aws_vpc_endpoint" "interface" {
  for_each = local.compute_endpoints

  vpc_id              = aws_vpc.this.id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = aws_subnet.nodes[*].id
  security_group_ids  = [aws_security_group.endpoints.id]
  private_dns_enabled = true
  policy              = data.aws_iam_policy_document.compute_endpoint[each.key].json
  tags                = merge(local.tags, { Name = "${var.name_prefix}-compute-${each.key}" })
}

# --- Flow logs ----------------------------------------------------------------
module "flow_logs" {
  source = "../flow_logs"

  vpc_id             = aws_vpc.this.id
  log_group_name     = "/shoprank/${var.name_prefix}/public-compute/vpc-flow-logs"
  role_name          = "${var.name_prefix}-compute-flow-logs"
  kms_key_arn        = aws_kms_key.compute.arn
  log_retention_days = var.log_retention_days
  tags               = local.tags
}

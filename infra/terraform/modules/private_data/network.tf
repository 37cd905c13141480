# ---------------------------------------------------------------------------
# Private data zone network.
#
# ZONE RULE: this VPC has NO internet path. There is no aws_internet_gateway,
# no egress-only gateway, no NAT gateway, no public subnet and no 0.0.0.0/0
# route. AWS APIs are reached through VPC endpoints (endpoints.tf) and the
# public compute zone only through the peering created by the `link` module.
# ---------------------------------------------------------------------------

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  tags       = merge(var.tags, { "shoprank:zone" = "private-data", "shoprank:environment" = var.environment })
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(local.tags, { Name = "${var.name_prefix}-private-data" })
}

# Lock down the default security group: nothing may use it.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${var.name_prefix}-private-default-deny" })
}

resource "aws_subnet" "private" {
  count = length(var.private_subnet_cidrs)

  vpc_id                  = aws_vpc.this.id
  cidr_block              = var.private_subnet_cidrs[count.index]
  availability_zone       = var.availability_zones[count.index]
  map_public_ip_on_launch = false

  tags = merge(local.tags, { Name = "${var.name_prefix}-private-${var.availability_zones[count.index]}", "shoprank:tier" = "private" })
}

# One route table for all private subnets. Its only routes are the local VPC
# route, the S3 gateway endpoint prefix list and (added by `link`) the
# peering routes to the compute node subnets.
resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = "${var.name_prefix}-private" })
}

resource "aws_route_table_association" "private" {
  count = length(aws_subnet.private)

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# --- Flow logs: every accepted and rejected flow of the zone ---------------
module "flow_logs" {
  source = "../flow_logs"

  vpc_id             = aws_vpc.this.id
  log_group_name     = "/shoprank/${var.name_prefix}/private-data/vpc-flow-logs"
  role_name          = "${var.name_prefix}-private-flow-logs"
  kms_key_arn        = aws_kms_key.restricted.arn
  log_retention_days = var.log_retention_days
  tags               = local.tags
}

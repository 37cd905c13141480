# ---------------------------------------------------------------------------
# The link between the zones: VPC peering (non-transitive, so neither zone can
# reach the internet or other networks through the other) with routes only
# between the compute NODE subnets and the data PRIVATE subnets, and security
# group rules only for the flows below.
#
# THE FLOW TABLE - everything that may cross the link:
#
#   compute nodes  -> Redis              6379  Feast online store (TLS, a user per client)
#   compute nodes  -> Postgres           5432  Feast registry, Airflow metadata (TLS)
#   compute nodes  -> S3 link endpoint    443  shareable buckets only (endpoint
#                                              + bucket policies)
#   edge workers   -> Airflow API        8080  internal NLB (node port below),
#                                              workers pull tasks; no data
# ---------------------------------------------------------------------------

locals {
  tags = merge(var.tags, { "shoprank:zone" = "link" })

  compute_to_data = {
    redis    = { port = 6379, security_group_id = var.redis_security_group_id, what = "Feast online store (TLS, a user per client)" }
    postgres = { port = 5432, security_group_id = var.postgres_security_group_id, what = "Feast SQL registry and Airflow metadata (TLS)" }
    s3       = { port = 443, security_group_id = var.s3_endpoint_security_group_id, what = "S3 interface endpoint, shareable buckets only" }
  }

  data_to_compute = {
    airflow_api = { listener_port = 8080, node_port = var.airflow_api_node_port, what = "Airflow edge workers pull tasks from the Airflow API server" }
  }

  compute_to_data_rules = {
    for pair in setproduct(keys(local.compute_to_data), var.compute_node_subnet_cidrs) :
    "${pair[0]}:${pair[1]}" => merge(local.compute_to_data[pair[0]], { cidr = pair[1] })
  }

  data_to_compute_rules = {
    for pair in setproduct(keys(local.data_to_compute), var.data_subnet_cidrs) :
    "${pair[0]}:${pair[1]}" => merge(local.data_to_compute[pair[0]], { cidr = pair[1] })
  }

  compute_node_port_rules = {
    for pair in setproduct(keys(local.data_to_compute), var.compute_node_subnet_cidrs) :
    "${pair[0]}:${pair[1]}" => merge(local.data_to_compute[pair[0]], { cidr = pair[1] })
  }
}

resource "aws_vpc_peering_connection" "this" {
  vpc_id      = var.compute_vpc_id
  peer_vpc_id = var.data_vpc_id
  auto_accept = true

  tags = merge(local.tags, { Name = "${var.name_prefix}-compute-to-data" })
}

# --- Routes: node subnets <-> private data subnets, nothing wider ------------
resource "aws_route" "data_to_compute" {
  for_each = toset(var.compute_node_subnet_cidrs)

  route_table_id            = var.data_route_table_id
  destination_cidr_block    = each.value
  vpc_peering_connection_id = aws_vpc_peering_connection.this.id
}

resource "aws_route" "compute_to_data" {
  for_each = {
    for pair in setproduct(range(length(var.compute_route_table_ids)), var.data_subnet_cidrs) :
    "${pair[0]}:${pair[1]}" => { route_table_id = var.compute_route_table_ids[pair[0]], cidr = pair[1] }
  }

  route_table_id            = each.value.route_table_id
  destination_cidr_block    = each.value.cidr
  vpc_peering_connection_id = aws_vpc_peering_connection.this.id
}

# --- Security groups -----------------------------------------------------------
resource "aws_vpc_security_group_ingress_rule" "compute_to_data" {
  for_each = local.compute_to_data_rules

  security_group_id = each.value.security_group_id
  description       = "link: ${each.value.what} from compute nodes ${each.value.cidr}"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "edge_workers_to_compute" {
  for_each = local.compute_node_port_rules

  security_group_id = var.edge_workers_security_group_id
  description       = "link: ${each.value.what} (NLB listener in ${each.value.cidr})"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.listener_port
  to_port           = each.value.listener_port
  tags              = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "data_to_compute" {
  for_each = local.data_to_compute_rules

  security_group_id = var.cluster_security_group_id
  description       = "link: ${each.value.what} from data subnet ${each.value.cidr} (NLB preserves client IP)"
  cidr_ipv4         = each.value.cidr
  ip_protocol       = "tcp"
  from_port         = each.value.node_port
  to_port           = each.value.node_port
  tags              = local.tags
}

# LINK root (apply third). One root for every environment:
# envs/<env>/link.tfvars and envs/<env>/link.backend.hcl.
locals {
  zone_tag = "link"
}

# Both zones' outputs, from the same environment's state bucket.
data "terraform_remote_state" "zone" {
  for_each = toset(["private_data", "public_compute"])

  backend = "s3"
  config = {
    bucket = var.state_bucket
    key    = local.state_keys[each.key]
    region = var.aws_region
  }
}

locals {
  data_zone    = data.terraform_remote_state.zone["private_data"].outputs
  compute_zone = data.terraform_remote_state.zone["public_compute"].outputs
}

module "link" {
  source = "../../modules/link"

  name_prefix = local.name_prefix

  data_vpc_id                    = local.data_zone.vpc_id
  data_route_table_id            = local.data_zone.private_route_table_id
  data_subnet_cidrs              = local.data_zone.private_subnet_cidrs
  redis_security_group_id        = local.data_zone.link_security_group_ids.redis.id
  postgres_security_group_id     = local.data_zone.link_security_group_ids.postgres.id
  s3_endpoint_security_group_id  = local.data_zone.link_security_group_ids.s3.id
  edge_workers_security_group_id = local.data_zone.edge_workers_security_group_id

  compute_vpc_id            = local.compute_zone.vpc_id
  compute_route_table_ids   = local.compute_zone.node_route_table_ids
  compute_node_subnet_cidrs = local.compute_zone.node_subnet_cidrs
  cluster_security_group_id = local.compute_zone.cluster_security_group_id
}

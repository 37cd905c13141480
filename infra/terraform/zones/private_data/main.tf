# PRIVATE DATA ZONE root (apply first). One root for every environment:
# envs/<env>/private_data.tfvars and envs/<env>/private_data.backend.hcl.
locals {
  zone_tag = "private-data"
}

# The role running Terraform keeps control-plane access to the buckets.
data "aws_iam_session_context" "current" {
  arn = data.aws_caller_identity.current.arn
}

data "aws_caller_identity" "current" {}

module "private_data" {
  source = "../../modules/private_data"

  name_prefix = local.name_prefix
  environment = var.environment

  vpc_cidr             = var.vpc_cidr
  availability_zones   = var.availability_zones
  private_subnet_cidrs = var.private_subnet_cidrs

  raw_retention_days     = var.raw_retention_days
  curated_retention_days = var.curated_retention_days

  redis_node_type               = var.redis_node_type
  redis_num_nodes               = var.redis_num_nodes
  postgres_instance_class       = var.postgres_instance_class
  postgres_allocated_storage_gb = var.postgres_allocated_storage_gb
  postgres_multi_az             = var.postgres_multi_az
  deletion_protection           = var.deletion_protection
  backup_retention_days         = var.backup_retention_days

  admin_principal_arns = concat([data.aws_iam_session_context.current.issuer_arn], var.extra_admin_principal_arns)

  edge_worker_ami_id = var.edge_worker_ami_id
  edge_worker_count  = var.edge_worker_count
}

# Creates the applications' database roles (modules/private_data/database_roles.tf) as the master user,
# from wherever Terraform runs inside the data VPC (e.g. an edge worker over SSM). A new
# environment applies in two steps: -target the database instance first, then everything.
provider "postgresql" {
  host            = module.private_data.postgres_address
  port            = 5432
  database        = "shoprank"
  username        = module.private_data.postgres_admin_username
  password        = module.private_data.postgres_admin_password
  sslmode         = "require"
  superuser       = false
  connect_timeout = 15
}

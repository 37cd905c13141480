# PUBLIC COMPUTE ZONE root (apply second). One root for every environment:
# envs/<env>/public_compute.tfvars and envs/<env>/public_compute.backend.hcl.
locals {
  zone_tag = "public-compute"
}

data "aws_caller_identity" "current" {}

data "aws_iam_session_context" "current" {
  arn = data.aws_caller_identity.current.arn
}

# The data zone's outputs, from the same environment's state bucket.
data "terraform_remote_state" "private_data" {
  backend = "s3"
  config = {
    bucket = var.state_bucket
    key    = local.state_keys.private_data
    region = var.aws_region
  }
}

locals {
  data_zone = data.terraform_remote_state.private_data.outputs
}

module "public_compute" {
  source = "../../modules/public_compute"

  name_prefix = local.name_prefix
  environment = var.environment

  vpc_cidr            = var.vpc_cidr
  availability_zones  = var.availability_zones
  public_subnet_cidrs = var.public_subnet_cidrs
  node_subnet_cidrs   = var.node_subnet_cidrs
  single_nat_gateway  = var.single_nat_gateway

  kubernetes_version      = var.kubernetes_version
  cluster_admin_role_arns = concat([data.aws_iam_session_context.current.issuer_arn], var.extra_cluster_admin_role_arns)

  cpu_instance_types = var.cpu_instance_types
  cpu_scaling        = var.cpu_scaling
  gpu_instance_types = var.gpu_instance_types
  gpu_scaling        = var.gpu_scaling

  # Only what may cross: shareable buckets, their key, the secret ARNs.
  shareable_bucket_arns = local.data_zone.shareable_bucket_arns
  shared_kms_key_arn    = local.data_zone.shared_kms_key_arn
  secret_arns           = local.data_zone.secret_arns
  service_kms_key_arn   = local.data_zone.service_kms_key_arn
}

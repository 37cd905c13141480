# public_compute: provider pins and remote state.
terraform {
  required_version = ">= 1.10, < 2.0" # >= 1.10: S3 backend native locking (use_lockfile)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.80.0"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "= 4.0.6"
    }
  }

  # One state per zone and environment. Partial configuration: bucket, key,
  # region, encryption and locking come from envs/<env>/public_compute.backend.hcl
  # (terraform init -backend-config=...).
  backend "s3" {}
}

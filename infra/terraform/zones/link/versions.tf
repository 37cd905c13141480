# link: provider pins and remote state.
terraform {
  required_version = ">= 1.10, < 2.0" # >= 1.10: S3 backend native locking (use_lockfile)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.80.0"
    }
  }

  # One state per zone and environment. Partial configuration: bucket, key,
  # region, encryption and locking come from envs/<env>/link.backend.hcl
  # (terraform init -backend-config=...).
  backend "s3" {}
}

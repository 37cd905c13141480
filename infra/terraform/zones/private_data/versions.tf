# private_data: provider pins and remote state.
terraform {
  required_version = ">= 1.10, < 2.0" # >= 1.10: S3 backend native locking (use_lockfile)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.80.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "= 3.6.3"
    }
    postgresql = {
      source  = "cyrilgdn/postgresql"
      version = "= 1.25.0"
    }
  }

  # One state per zone and environment. Partial configuration: bucket, key,
  # region, encryption and locking come from envs/<env>/private_data.backend.hcl
  # (terraform init -backend-config=...). The state bucket and its KMS key are
  # created once, before anything else (see infra/README.md, step 0).
  backend "s3" {}
}

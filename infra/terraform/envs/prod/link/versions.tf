# prod / link: provider pins and remote state.
terraform {
  required_version = ">= 1.10, < 2.0" # >= 1.10: S3 backend native locking (use_lockfile)

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.80.0"
    }
  }

  # One state per zone and environment. The state bucket and its KMS key are
  # created once, before anything else (see infra/README.md, step 0).
  backend "s3" {
    bucket       = "shoprank-tfstate-prod"
    key          = "link/terraform.tfstate"
    region       = "eu-west-1"
    encrypt      = true
    kms_key_id   = "alias/shoprank-tfstate-prod"
    use_lockfile = true
  }
}

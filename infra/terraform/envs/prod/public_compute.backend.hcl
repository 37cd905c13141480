# prod / public_compute: remote state of zones/public_compute
# (terraform init -backend-config=../../envs/prod/public_compute.backend.hcl).
bucket       = "shoprank-tfstate-prod"
key          = "public_compute/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
kms_key_id   = "alias/shoprank-tfstate-prod"
use_lockfile = true

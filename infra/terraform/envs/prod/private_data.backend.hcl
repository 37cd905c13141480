# prod / private_data: remote state of zones/private_data
# (terraform init -backend-config=../../envs/prod/private_data.backend.hcl).
bucket       = "shoprank-tfstate-prod"
key          = "private_data/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
kms_key_id   = "alias/shoprank-tfstate-prod"
use_lockfile = true

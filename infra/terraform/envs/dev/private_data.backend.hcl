# dev / private_data: remote state of zones/private_data
# (terraform init -backend-config=../../envs/dev/private_data.backend.hcl).
bucket       = "shoprank-tfstate-dev"
key          = "private_data/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
kms_key_id   = "alias/shoprank-tfstate-dev"
use_lockfile = true

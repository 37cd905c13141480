# prod / link: remote state of zones/link
# (terraform init -backend-config=../../envs/prod/link.backend.hcl).
bucket       = "shoprank-tfstate-prod"
key          = "link/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
kms_key_id   = "alias/shoprank-tfstate-prod"
use_lockfile = true

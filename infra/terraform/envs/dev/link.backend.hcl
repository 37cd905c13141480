# dev / link: remote state of zones/link
# (terraform init -backend-config=../../envs/dev/link.backend.hcl).
bucket       = "shoprank-tfstate-dev"
key          = "link/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
kms_key_id   = "alias/shoprank-tfstate-dev"
use_lockfile = true

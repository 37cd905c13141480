# dev / public_compute: remote state of zones/public_compute
# (terraform init -backend-config=../../envs/dev/public_compute.backend.hcl).
bucket       = "shoprank-tfstate-dev"
key          = "public_compute/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
kms_key_id   = "alias/shoprank-tfstate-dev"
use_lockfile = true

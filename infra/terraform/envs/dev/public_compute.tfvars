# dev / public_compute: values for zones/public_compute (terraform plan -var-file=../../envs/dev/public_compute.tfvars).
aws_region   = "eu-west-1"
environment  = "dev"
state_bucket = "shoprank-tfstate-dev"

vpc_cidr            = "10.30.0.0/16"
availability_zones  = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
public_subnet_cidrs = ["10.30.0.0/24", "10.30.1.0/24", "10.30.2.0/24"]
node_subnet_cidrs   = ["10.30.32.0/19", "10.30.64.0/19", "10.30.96.0/19"]
single_nat_gateway  = true

kubernetes_version = "1.33"

cpu_instance_types = ["m7i.large"]
cpu_scaling        = { min = 2, desired = 2, max = 4 }
gpu_instance_types = ["g5.xlarge"]
gpu_scaling        = { min = 0, desired = 0, max = 2 }

# The online API trusts shopper tokens signed by these keys only: the public half of
# `shoprank tokens keygen`, run in the private zone (add the new key before the issuer
# switches to it, drop the old one a day later). PLACEHOLDER until the first keygen: its
# private half was never kept, so no token verifies against it.
token_public_keys = ["-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAd5RfCeW7ASc1sdZkHNRvrcRjBjSOa4/fRnpalcXD1+E=\n-----END PUBLIC KEY-----\n"]

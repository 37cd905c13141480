# prod / public_compute: values for zones/public_compute (terraform plan -var-file=../../envs/prod/public_compute.tfvars).
aws_region   = "eu-west-1"
environment  = "prod"
state_bucket = "shoprank-tfstate-prod"

vpc_cidr            = "10.50.0.0/16"
availability_zones  = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
public_subnet_cidrs = ["10.50.0.0/24", "10.50.1.0/24", "10.50.2.0/24"]
node_subnet_cidrs   = ["10.50.32.0/19", "10.50.64.0/19", "10.50.96.0/19"]
single_nat_gateway  = false

kubernetes_version = "1.33"

cpu_instance_types = ["m7i.xlarge", "m6i.xlarge"]
cpu_scaling        = { min = 3, desired = 3, max = 12 }
gpu_instance_types = ["g5.2xlarge", "g6.2xlarge"]
gpu_scaling        = { min = 1, desired = 2, max = 8 }

# The online API trusts shopper tokens signed by these keys only: the public half of
# `shoprank tokens keygen`, run in the private zone (add the new key before the issuer
# switches to it, drop the old one a day later). PLACEHOLDER until the first keygen: its
# private half was never kept, so no token verifies against it.
token_public_keys = ["-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA2zh1TlA6UsTJMtpep/bXtnNBvWKr8ew5Eqon8sbiut0=\n-----END PUBLIC KEY-----\n"]

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

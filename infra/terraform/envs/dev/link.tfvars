# dev / link: values for zones/link (terraform plan -var-file=../../envs/dev/link.tfvars).
aws_region   = "eu-west-1"
environment  = "dev"
state_bucket = "shoprank-tfstate-dev"

# prod / link: values for zones/link (terraform plan -var-file=../../envs/prod/link.tfvars).
aws_region   = "eu-west-1"
environment  = "prod"
state_bucket = "shoprank-tfstate-prod"

# dev / private_data: values for zones/private_data (terraform plan -var-file=../../envs/dev/private_data.tfvars).
aws_region   = "eu-west-1"
environment  = "dev"
state_bucket = "shoprank-tfstate-dev"

vpc_cidr             = "10.20.0.0/20"
availability_zones   = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
private_subnet_cidrs = ["10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/24"]

raw_retention_days     = 30
curated_retention_days = 90

redis_node_type               = "cache.t4g.small"
redis_num_nodes               = 2
postgres_instance_class       = "db.t4g.medium"
postgres_allocated_storage_gb = 20
postgres_multi_az             = false
deletion_protection           = true
backup_retention_days         = 7

# Set to the baked edge-worker AMI (shoprank image + apache-airflow-providers-edge3).
edge_worker_ami_id = null
edge_worker_count  = 1

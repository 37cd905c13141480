# prod / private_data: values for zones/private_data (terraform plan -var-file=../../envs/prod/private_data.tfvars).
aws_region   = "eu-west-1"
environment  = "prod"
state_bucket = "shoprank-tfstate-prod"

vpc_cidr             = "10.40.0.0/20"
availability_zones   = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
private_subnet_cidrs = ["10.40.0.0/24", "10.40.1.0/24", "10.40.2.0/24"]

raw_retention_days     = 90
curated_retention_days = 400

redis_node_type               = "cache.r7g.large"
redis_num_nodes               = 3
postgres_instance_class       = "db.r7g.large"
postgres_allocated_storage_gb = 100
postgres_multi_az             = true
deletion_protection           = true
backup_retention_days         = 14

# Set to the baked edge-worker AMI (shoprank image + apache-airflow-providers-edge3).
edge_worker_ami_id = null
edge_worker_count  = 2

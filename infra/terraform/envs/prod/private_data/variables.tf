variable "aws_region" {
  description = "AWS region of this environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must be an AWS region name such as eu-west-1."
  }
}

variable "environment" {
  description = "Environment name; must match the directory."
  type        = string

  validation {
    condition     = var.environment == "prod"
    error_message = "This root configuration is for prod only."
  }
}

variable "state_bucket" {
  description = "S3 bucket holding the remote states of this environment (same as the backend block)."
  type        = string
  default     = "shoprank-tfstate-prod"
}

variable "vpc_cidr" {
  description = "CIDR of the private data VPC."
  type        = string
}

variable "availability_zones" {
  description = "AZs of the private subnets."
  type        = list(string)
}

variable "private_subnet_cidrs" {
  description = "Private subnet CIDRs, one per AZ."
  type        = list(string)
}

variable "raw_retention_days" {
  description = "Retention of raw events (personal data)."
  type        = number
}

variable "curated_retention_days" {
  description = "Retention of curated data."
  type        = number
}

variable "redis_node_type" {
  description = "Feast online store node type."
  type        = string
}

variable "redis_num_nodes" {
  description = "Feast online store primary + replicas."
  type        = number
}

variable "postgres_instance_class" {
  description = "Postgres instance class."
  type        = string
}

variable "postgres_allocated_storage_gb" {
  description = "Postgres initial storage."
  type        = number
}

variable "postgres_multi_az" {
  description = "Postgres Multi-AZ."
  type        = bool
}

variable "deletion_protection" {
  description = "Postgres deletion protection."
  type        = bool
}

variable "backup_retention_days" {
  description = "Backup retention of Postgres and Redis."
  type        = number
}

variable "extra_admin_principal_arns" {
  description = "IAM principals, besides the role running Terraform, that may manage bucket configuration."
  type        = list(string)
  default     = []
}

variable "edge_worker_ami_id" {
  description = "AMI of the Airflow edge workers; null launches none."
  type        = string
  default     = null
}

variable "edge_worker_count" {
  description = "Number of Airflow edge workers."
  type        = number
}

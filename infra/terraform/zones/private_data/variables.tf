# Per-environment values: envs/<env>/private_data.tfvars. The module checks
# what is valid at all; the validations here are what prod must have.
# (environment, aws_region, state_bucket: environment.tf)

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

  validation {
    condition     = var.environment != "prod" || !startswith(var.redis_node_type, "cache.t")
    error_message = "prod: the Feast online store must not run on burstable (cache.t*) nodes."
  }
}

variable "redis_num_nodes" {
  description = "Feast online store primary + replicas."
  type        = number

  validation {
    condition     = var.environment != "prod" || var.redis_num_nodes >= 3
    error_message = "prod: the Feast online store needs a node in each of three AZs (redis_num_nodes >= 3)."
  }
}

variable "postgres_instance_class" {
  description = "Postgres instance class."
  type        = string

  validation {
    condition     = var.environment != "prod" || !startswith(var.postgres_instance_class, "db.t")
    error_message = "prod: Postgres must not run on a burstable (db.t*) class."
  }
}

variable "postgres_allocated_storage_gb" {
  description = "Postgres initial storage."
  type        = number
}

variable "postgres_multi_az" {
  description = "Postgres Multi-AZ (must be true in prod)."
  type        = bool

  validation {
    condition     = var.postgres_multi_az || var.environment != "prod"
    error_message = "prod: postgres_multi_az cannot be disabled."
  }
}

variable "deletion_protection" {
  description = "Postgres deletion protection (must be true in prod)."
  type        = bool

  validation {
    condition     = var.deletion_protection || var.environment != "prod"
    error_message = "prod: deletion_protection cannot be disabled."
  }
}

variable "backup_retention_days" {
  description = "Backup retention of Postgres and Redis."
  type        = number

  validation {
    condition     = var.environment != "prod" || var.backup_retention_days >= 14
    error_message = "prod: keep backups for at least 14 days."
  }
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

  validation {
    condition     = var.environment != "prod" || var.edge_worker_count >= 2
    error_message = "prod: run at least two Airflow edge workers (the only runners of raw-data tasks)."
  }
}

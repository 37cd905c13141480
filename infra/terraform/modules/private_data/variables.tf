variable "name_prefix" {
  description = "Prefix of every resource name, e.g. shoprank-prod."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,24}$", var.name_prefix))
    error_message = "name_prefix: 3-25 chars, lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the private data VPC. Must not overlap the public compute VPC (they are peered)."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR of /24 or larger."
  }
}

variable "availability_zones" {
  description = "AZs for the private subnets (one subnet per AZ)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "Use at least two AZs (Redis and Postgres subnet groups need two)."
  }
}

variable "private_subnet_cidrs" {
  description = "One private subnet CIDR per AZ, inside vpc_cidr. There are no public subnets in this zone."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.private_subnet_cidrs : can(cidrnetmask(c))])
    error_message = "private_subnet_cidrs must be IPv4 CIDRs."
  }

  validation {
    condition     = length(var.private_subnet_cidrs) == length(var.availability_zones)
    error_message = "Give exactly one private subnet CIDR per availability zone."
  }
}

variable "raw_retention_days" {
  description = "Raw events (personal data) are deleted after this many days."
  type        = number
  default     = 90

  validation {
    condition     = var.raw_retention_days >= 1 && var.raw_retention_days <= 400
    error_message = "raw_retention_days must be between 1 and 400 (data-protection policy: raw personal data is kept at most ~13 months)."
  }
}

variable "curated_retention_days" {
  description = "Curated data (still carries raw user ids) is deleted after this many days."
  type        = number
  default     = 400

  validation {
    condition     = var.curated_retention_days >= 1 && var.curated_retention_days <= 800
    error_message = "curated_retention_days must be between 1 and 800."
  }
}

variable "kfp_root_retention_days" {
  description = "Objects under the KFP pipeline root (kfp/ of the pipelines bucket) are deleted after this many days: the bound for run artifacts that may hold raw data."
  type        = number
  default     = 30

  validation {
    condition     = var.kfp_root_retention_days >= 1 && var.kfp_root_retention_days <= 30
    error_message = "kfp_root_retention_days must be between 1 and 30."
  }
}

variable "redis_node_type" {
  description = "ElastiCache node type of the Feast online store."
  type        = string
  default     = "cache.t4g.small"

  validation {
    condition     = can(regex("^cache\\.", var.redis_node_type))
    error_message = "redis_node_type must be an ElastiCache node type (cache.*)."
  }
}

variable "redis_num_nodes" {
  description = "Primary + replicas of the Feast online store (>= 2 for automatic failover)."
  type        = number
  default     = 2

  validation {
    condition     = var.redis_num_nodes >= 2 && var.redis_num_nodes <= 6
    error_message = "redis_num_nodes must be between 2 and 6."
  }
}

variable "postgres_engine_version" {
  description = "PostgreSQL version (Feast SQL registry + Airflow metadata)."
  type        = string
  default     = "16.4"

  validation {
    condition     = can(regex("^1[5-7]\\.[0-9]+$", var.postgres_engine_version))
    error_message = "postgres_engine_version must be 15.x, 16.x or 17.x."
  }
}

variable "postgres_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.medium"

  validation {
    condition     = can(regex("^db\\.", var.postgres_instance_class))
    error_message = "postgres_instance_class must be an RDS class (db.*)."
  }
}

variable "postgres_allocated_storage_gb" {
  description = "Initial storage; autoscaling allows up to 4x."
  type        = number
  default     = 50

  validation {
    condition     = var.postgres_allocated_storage_gb >= 20 && var.postgres_allocated_storage_gb <= 4096
    error_message = "postgres_allocated_storage_gb must be between 20 and 4096."
  }
}

variable "backup_retention_days" {
  description = "Automated backup retention of Postgres and Redis snapshots."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 7 and 35."
  }
}

variable "deletion_protection" {
  description = "Protect Postgres from deletion (prod requires it: zones/private_data/variables.tf)."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of flow logs and service logs in CloudWatch."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least 365 days."
  }
}

variable "admin_principal_arns" {
  description = "IAM principals (the Terraform deploy role) that may manage bucket configuration from outside the VPC endpoints."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", a))])
    error_message = "admin_principal_arns must be IAM ARNs."
  }
}

variable "edge_worker_ami_id" {
  description = "AMI of the Airflow edge workers (shoprank image + airflow edge provider baked in). null: no edge workers are launched."
  type        = string
  default     = null

  validation {
    condition     = var.edge_worker_ami_id == null || can(regex("^ami-[0-9a-f]+$", var.edge_worker_ami_id))
    error_message = "edge_worker_ami_id must be an AMI id (ami-...) or null."
  }
}

variable "edge_worker_instance_type" {
  description = "Instance type of the Airflow edge workers that run the raw-data tasks."
  type        = string
  default     = "m7i.large"
}

variable "edge_worker_count" {
  description = "Number of Airflow edge workers in the private zone."
  type        = number
  default     = 1

  validation {
    condition     = var.edge_worker_count >= 0 && var.edge_worker_count <= 20
    error_message = "edge_worker_count must be between 0 and 20."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "postgres_multi_az" {
  description = "Run Postgres Multi-AZ (prod requires it: zones/private_data/variables.tf)."
  type        = bool
  default     = true
}

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
  description = "CIDR of the compute VPC."
  type        = string
}

variable "availability_zones" {
  description = "AZs of the cluster."
  type        = list(string)
}

variable "public_subnet_cidrs" {
  description = "NAT-only public subnets."
  type        = list(string)
}

variable "node_subnet_cidrs" {
  description = "Node/pod subnets."
  type        = list(string)
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs."
  type        = bool
}

variable "kubernetes_version" {
  description = "EKS version."
  type        = string
}

variable "extra_cluster_admin_role_arns" {
  description = "IAM roles, besides the role running Terraform, with cluster-admin."
  type        = list(string)
  default     = []
}

variable "cpu_instance_types" {
  description = "CPU node group instance types."
  type        = list(string)
}

variable "cpu_scaling" {
  description = "CPU node group size."
  type        = object({ min = number, desired = number, max = number })
}

variable "gpu_instance_types" {
  description = "GPU node group instance types."
  type        = list(string)
}

variable "gpu_scaling" {
  description = "GPU node group size."
  type        = object({ min = number, desired = number, max = number })
}

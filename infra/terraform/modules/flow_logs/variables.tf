variable "vpc_id" {
  description = "VPC whose flows are logged."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must be a VPC id (vpc-...)."
  }
}

variable "log_group_name" {
  description = "CloudWatch log group of the flow logs (the zone's KMS key policy allows its path)."
  type        = string

  validation {
    condition     = can(regex("^/shoprank/[a-z0-9-]+/[a-z-]+/vpc-flow-logs$", var.log_group_name))
    error_message = "log_group_name must be /shoprank/<name_prefix>/<zone>/vpc-flow-logs."
  }
}

variable "role_name" {
  description = "Name of the IAM role the flow-logs service assumes."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,63}$", var.role_name))
    error_message = "role_name: 3-64 lowercase letters, digits and hyphens."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key of the log group."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of the flow logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least 365 days."
  }
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}

variable "name" {
  description = "Globally unique bucket name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "Bucket names are 3-63 chars of lowercase letters, digits, dots and hyphens."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key that encrypts every object (SSE-KMS, bucket key on)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (customer-managed key), not an alias or AWS-managed key."
  }
}

variable "allowed_vpce_ids" {
  description = "VPC endpoint IDs through which data-plane access is allowed. Any request that arrives another way is denied by the bucket policy."
  type        = list(string)

  validation {
    condition     = length(var.allowed_vpce_ids) > 0 && alltrue([for id in var.allowed_vpce_ids : can(regex("^vpce-[0-9a-f]+$", id))])
    error_message = "Give at least one VPC endpoint ID (vpce-...)."
  }
}

variable "admin_principal_arns" {
  description = "Principals (e.g. the Terraform deploy role) exempt from the VPC-endpoint condition so that they can manage the bucket configuration. They are NOT exempt from TLS."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", a))])
    error_message = "admin_principal_arns must be IAM ARNs."
  }
}

variable "expiration_days" {
  description = "Delete current objects after this many days (retention rule); null keeps them."
  type        = number
  default     = null

  validation {
    condition     = var.expiration_days == null || try(var.expiration_days >= 1 && var.expiration_days <= 3650, false)
    error_message = "expiration_days must be between 1 and 3650, or null."
  }
}

variable "noncurrent_version_days" {
  description = "Delete non-current object versions after this many days."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_days >= 1 && var.noncurrent_version_days <= 3650
    error_message = "noncurrent_version_days must be between 1 and 3650."
  }
}

variable "prefix_expirations" {
  description = "Shorter retention under key prefixes: current objects after `days`, old versions `noncurrent_days` after they stop being current."
  type = list(object({
    prefix          = string
    days            = number
    noncurrent_days = number
  }))
  default = []

  validation {
    condition     = alltrue([for e in var.prefix_expirations : endswith(e.prefix, "/") && e.days >= 1 && e.days <= 3650 && e.noncurrent_days >= 1 && e.noncurrent_days <= 3650])
    error_message = "Each prefix ends with / and its days and noncurrent_days are between 1 and 3650."
  }
}

variable "replication" {
  description = "Optional same-region replication of ONE prefix to another bucket (the only way data leaves a private bucket). null disables it."
  type = object({
    role_arn                  = string
    prefix                    = string
    destination_bucket_arn    = string
    destination_kms_key_arn   = string
    destination_storage_class = optional(string, "STANDARD")
  })
  default = null
}

variable "tags" {
  description = "Tags added to the bucket."
  type        = map(string)
  default     = {}
}

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

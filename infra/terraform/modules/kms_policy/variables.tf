variable "log_group_patterns" {
  description = "Name of the statement set => CloudWatch log-group name pattern (after `log-group:`) whose logs a key may encrypt."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for p in values(var.log_group_patterns) : can(regex("^[/*a-zA-Z0-9._-]+$", p)) && p != "*"])
    error_message = "log_group_patterns must be log-group name patterns, never a bare *."
  }
}

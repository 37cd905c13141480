# Per-environment values: envs/<env>/public_compute.tfvars. The module checks
# what is valid at all; the validations here are what prod must have.
# (environment, aws_region, state_bucket: environment.tf)

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
  description = "One NAT gateway for all AZs (dev only)."
  type        = bool

  validation {
    condition     = var.environment != "prod" || !var.single_nat_gateway
    error_message = "prod: one NAT gateway per AZ (single_nat_gateway = false), so losing an AZ does not cut image pulls."
  }
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

  validation {
    condition     = var.environment != "prod" || var.cpu_scaling.min >= 3
    error_message = "prod: keep at least three CPU nodes (one per AZ)."
  }
}

variable "gpu_instance_types" {
  description = "GPU node group instance types."
  type        = list(string)
}

variable "gpu_scaling" {
  description = "GPU node group size."
  type        = object({ min = number, desired = number, max = number })

  validation {
    condition     = var.environment != "prod" || var.gpu_scaling.min >= 1
    error_message = "prod serves on GPUs (infra/k8s/overlays/prod uses components/gpu-serving): the GPU node group must not scale to zero (gpu_scaling.min >= 1)."
  }
}

variable "token_public_keys" {
  description = "PEM public keys (Ed25519) of the private zone's token signing key(s): the online API trusts tokens signed by these only. One, or two during a rotation (old and new). Public, so kept in the tfvars; the private halves never leave the private zone."
  type        = list(string)

  validation {
    condition     = length(var.token_public_keys) >= 1 && length(var.token_public_keys) <= 2
    error_message = "token_public_keys: one key, or two while the signing key rotates."
  }

  validation {
    condition     = alltrue([for k in var.token_public_keys : can(regex("^-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEA[A-Za-z0-9+/]{43}=\\n-----END PUBLIC KEY-----\\n?$", k))])
    error_message = "token_public_keys: each must be an Ed25519 public key in PEM (the .pub.pem of `shoprank tokens keygen`), never a private key."
  }
}

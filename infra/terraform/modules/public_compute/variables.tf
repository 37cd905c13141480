variable "name_prefix" {
  description = "Prefix of every resource name (also the EKS cluster name), e.g. shoprank-prod."
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
  description = "CIDR of the compute VPC. Must not overlap the private data VPC."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be an IPv4 CIDR of /20 or larger (pods take VPC IPs)."
  }
}

variable "availability_zones" {
  description = "AZs of the cluster (one public and one node subnet per AZ)."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2
    error_message = "EKS needs at least two AZs."
  }
}

variable "public_subnet_cidrs" {
  description = "Small public subnets that only hold the NAT gateways (nothing else is placed there)."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.public_subnet_cidrs : can(cidrnetmask(c))])
    error_message = "public_subnet_cidrs must be IPv4 CIDRs."
  }

  validation {
    condition     = length(var.public_subnet_cidrs) == length(var.availability_zones)
    error_message = "Give one public subnet CIDR per availability zone."
  }
}

variable "node_subnet_cidrs" {
  description = "Private subnets for nodes, pods and internal load balancers (one per AZ). These are the only compute CIDRs routed to the data zone."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.node_subnet_cidrs : can(cidrnetmask(c))])
    error_message = "node_subnet_cidrs must be IPv4 CIDRs."
  }

  validation {
    condition     = length(var.node_subnet_cidrs) == length(var.availability_zones)
    error_message = "Give one node subnet CIDR per availability zone."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all AZs (cheaper, dev) instead of one per AZ."
  type        = bool
  default     = false
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"

  validation {
    condition     = can(regex("^1\\.(3[1-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must be 1.31 or newer (standard support)."
  }
}

variable "cluster_endpoint_public_access" {
  description = "Expose the Kubernetes API publicly (restricted to cluster_endpoint_public_access_cidrs). Off by default: operators use the private endpoint (SSM / VPN)."
  type        = bool
  default     = false
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "CIDRs allowed to the public API endpoint when it is enabled."
  type        = list(string)
  default     = []

  validation {
    condition     = !contains(var.cluster_endpoint_public_access_cidrs, "0.0.0.0/0")
    error_message = "The Kubernetes API must never be open to 0.0.0.0/0."
  }
}

variable "cluster_admin_role_arns" {
  description = "IAM roles given cluster-admin through EKS access entries."
  type        = list(string)

  validation {
    condition     = length(var.cluster_admin_role_arns) > 0 && alltrue([for a in var.cluster_admin_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", a))])
    error_message = "Give at least one IAM role ARN."
  }
}

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group (platform, Airflow, online API, CPU serving)."
  type        = list(string)
  default     = ["m7i.xlarge"]
}

variable "cpu_scaling" {
  description = "min/desired/max nodes of the CPU node group."
  type        = object({ min = number, desired = number, max = number })
  default     = { min = 2, desired = 3, max = 10 }

  validation {
    condition     = var.cpu_scaling.min >= 1 && var.cpu_scaling.min <= var.cpu_scaling.desired && var.cpu_scaling.desired <= var.cpu_scaling.max
    error_message = "cpu_scaling must satisfy 1 <= min <= desired <= max."
  }
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group (training, GPU serving)."
  type        = list(string)
  default     = ["g5.xlarge"]

  validation {
    condition     = alltrue([for t in var.gpu_instance_types : can(regex("^(g[4-6][a-z]*|p[3-5][a-z]*)\\.", t))])
    error_message = "gpu_instance_types must be NVIDIA GPU families (g4dn, g5, g6, p3, p4d, p5...)."
  }
}

variable "gpu_scaling" {
  description = "min/desired/max nodes of the GPU node group (min 0 lets it scale to zero)."
  type        = object({ min = number, desired = number, max = number })
  default     = { min = 0, desired = 1, max = 4 }

  validation {
    condition     = var.gpu_scaling.min >= 0 && var.gpu_scaling.min <= var.gpu_scaling.desired && var.gpu_scaling.desired <= var.gpu_scaling.max
    error_message = "gpu_scaling must satisfy 0 <= min <= desired <= max."
  }
}

# --- What the data zone lends to this zone ----------------------------------
variable "shareable_bucket_arns" {
  description = "ARNs of the data-zone buckets that may be used here, by data class. raw and curated can NOT be passed: that is the first line of the rule 'nothing in the public zone reads raw events'."
  type        = map(string)

  validation {
    condition     = alltrue([for k in keys(var.shareable_bucket_arns) : contains(["features", "models", "registry", "pipelines"], k)])
    error_message = "Only the features, models, registry and pipelines buckets may be given to the compute zone (never raw or curated)."
  }

  validation {
    condition     = alltrue([for a in values(var.shareable_bucket_arns) : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", a)) && !can(regex("-(raw|curated)-", a))])
    error_message = "shareable_bucket_arns must be bucket ARNs and none may be a raw or curated bucket."
  }
}

variable "shared_kms_key_arn" {
  description = "KMS key of the shareable buckets (data zone)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.shared_kms_key_arn))
    error_message = "shared_kms_key_arn must be a KMS key ARN."
  }
}

variable "secret_arns" {
  description = "Secrets Manager ARNs the compute zone may read, by name (feast-online-store-<client>, feast-registry, feast-registry-reader, airflow-metadata, rate-limits-redis, request-id-key, api-keys)."
  type        = map(string)

  validation {
    condition     = alltrue([for a in values(var.secret_arns) : can(regex("^arn:aws[a-z-]*:secretsmanager:", a))])
    error_message = "secret_arns must be Secrets Manager ARNs."
  }

  validation {
    condition     = alltrue([for k, a in var.secret_arns : !can(regex("pseudonym|signing", "${k} ${a}"))])
    error_message = "The pseudonymisation key and the token signing key stay in the private zone: never pass their secrets to the compute zone."
  }
}

variable "service_kms_key_arn" {
  description = "KMS key that encrypts the secrets (data zone)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.service_kms_key_arn))
    error_message = "service_kms_key_arn must be a KMS key ARN."
  }
}

variable "log_retention_days" {
  description = "Retention of cluster, flow and Airflow logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least 365 days."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

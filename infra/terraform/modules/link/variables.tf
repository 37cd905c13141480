variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,24}$", var.name_prefix))
    error_message = "name_prefix: 3-25 chars, lowercase letters, digits and hyphens, starting with a letter."
  }
}

# --- Data zone side ----------------------------------------------------------
variable "data_vpc_id" {
  description = "Private data VPC (accepter)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.data_vpc_id))
    error_message = "data_vpc_id must be a VPC id."
  }
}

variable "data_route_table_id" {
  description = "Route table of the private data subnets."
  type        = string

  validation {
    condition     = can(regex("^rtb-[0-9a-f]+$", var.data_route_table_id))
    error_message = "data_route_table_id must be a route table id."
  }
}

variable "data_subnet_cidrs" {
  description = "Private data subnets (the only data-zone CIDRs routed to compute)."
  type        = list(string)

  validation {
    condition     = length(var.data_subnet_cidrs) > 0 && alltrue([for c in var.data_subnet_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "data_subnet_cidrs must be specific IPv4 CIDRs."
  }
}

variable "redis_security_group_id" {
  description = "Security group of the Feast Redis online store."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.redis_security_group_id))
    error_message = "Must be a security group id."
  }
}

variable "postgres_security_group_id" {
  description = "Security group of Postgres (Feast registry, Airflow metadata)."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.postgres_security_group_id))
    error_message = "Must be a security group id."
  }
}

variable "s3_endpoint_security_group_id" {
  description = "Security group of the data zone's S3 interface endpoint for the link."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.s3_endpoint_security_group_id))
    error_message = "Must be a security group id."
  }
}

variable "edge_workers_security_group_id" {
  description = "Security group of the Airflow edge workers in the data zone."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.edge_workers_security_group_id))
    error_message = "Must be a security group id."
  }
}

# --- Compute zone side -------------------------------------------------------
variable "compute_vpc_id" {
  description = "Public compute VPC (requester)."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]+$", var.compute_vpc_id))
    error_message = "compute_vpc_id must be a VPC id."
  }
}

variable "compute_route_table_ids" {
  description = "Route tables of the compute node subnets."
  type        = list(string)

  validation {
    condition     = alltrue([for r in var.compute_route_table_ids : can(regex("^rtb-[0-9a-f]+$", r))])
    error_message = "compute_route_table_ids must be route table ids."
  }
}

variable "compute_node_subnet_cidrs" {
  description = "Compute node/pod subnets (the only compute CIDRs routed to the data zone)."
  type        = list(string)

  validation {
    condition     = length(var.compute_node_subnet_cidrs) > 0 && alltrue([for c in var.compute_node_subnet_cidrs : can(cidrnetmask(c)) && c != "0.0.0.0/0"])
    error_message = "compute_node_subnet_cidrs must be specific IPv4 CIDRs."
  }
}

variable "cluster_security_group_id" {
  description = "EKS cluster security group (attached to the nodes)."
  type        = string

  validation {
    condition     = can(regex("^sg-[0-9a-f]+$", var.cluster_security_group_id))
    error_message = "Must be a security group id."
  }
}

variable "airflow_api_node_port" {
  description = "NodePort of the internal NLB Service in front of the Airflow API server (infra/k8s/platform/airflow)."
  type        = number
  default     = 30080

  validation {
    condition     = var.airflow_api_node_port >= 30000 && var.airflow_api_node_port <= 32767
    error_message = "airflow_api_node_port must be in the Kubernetes NodePort range."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

# Read by the public_compute and link roots through terraform_remote_state.
output "vpc_id" {
  description = "Private data VPC."
  value       = module.private_data.vpc_id
}

output "vpc_cidr" {
  description = "CIDR of the private data VPC."
  value       = module.private_data.vpc_cidr
}

output "private_subnet_cidrs" {
  description = "Private data subnets."
  value       = module.private_data.private_subnet_cidrs
}

output "private_route_table_id" {
  description = "Route table of the private subnets."
  value       = module.private_data.private_route_table_id
}

output "link_security_group_ids" {
  description = "Security groups the compute zone may reach, with their port."
  value       = module.private_data.link_security_group_ids
}

output "edge_workers_security_group_id" {
  description = "Security group of the Airflow edge workers."
  value       = module.private_data.edge_workers_security_group_id
}

output "shareable_bucket_arns" {
  description = "Buckets that may be used from the compute zone (never raw/curated)."
  value       = module.private_data.shareable_bucket_arns
}

output "shareable_bucket_names" {
  description = "Names of the shareable buckets."
  value       = module.private_data.shareable_bucket_names
}

output "shared_kms_key_arn" {
  description = "KMS key of the shareable buckets."
  value       = module.private_data.shared_kms_key_arn
}

output "service_kms_key_arn" {
  description = "KMS key of the connection-string secrets."
  value       = module.private_data.service_kms_key_arn
}

output "secret_arns" {
  description = "Secrets Manager ARNs the compute zone may read: the connection strings and the online API's own secrets."
  value       = module.private_data.secret_arns
}

output "token_signing_key_secret_arn" {
  description = "The token signing key's secret: the private zone's issuer only (put the PEM of `shoprank tokens keygen` here)."
  value       = module.private_data.token_signing_key_secret_arn
}

output "s3_link_endpoint_url" {
  description = "S3 interface endpoint URL used from the compute zone."
  value       = module.private_data.s3_link_endpoint_url
}

output "cluster_env_data" {
  description = "Data-zone half of the compute cluster's `cluster` profile."
  value       = module.private_data.cluster_env_data
}

output "shoprank_edge_worker_env" {
  description = "`cluster` profile of the private-zone edge workers (the only runs that see raw/)."
  value       = module.private_data.edge_worker_env
}

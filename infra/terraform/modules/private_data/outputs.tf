# --- Network (consumed by `link`) -------------------------------------------
output "vpc_id" {
  description = "Private data VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR of the private data VPC."
  value       = aws_vpc.this.cidr_block
}

output "private_subnet_cidrs" {
  description = "Private subnet CIDRs (routed to the compute zone by `link`)."
  value       = aws_subnet.private[*].cidr_block
}

output "private_route_table_id" {
  description = "Route table of the private subnets."
  value       = aws_route_table.private.id
}

output "link_security_group_ids" {
  description = "Security groups that the compute zone may reach over the link, and on which port. The link module adds the ingress rules."
  value = {
    redis    = { id = aws_security_group.redis.id, port = 6379 }
    postgres = { id = aws_security_group.postgres.id, port = 5432 }
    s3       = { id = aws_security_group.s3_link.id, port = 443 }
  }
}

output "edge_workers_security_group_id" {
  description = "Security group of the Airflow edge workers (egress to the Airflow API added by `link`)."
  value       = aws_security_group.edge_workers.id
}

# --- Data that may cross the link (consumed by `public_compute`) ------------
output "shareable_bucket_arns" {
  description = "ARNs of the buckets that may be used from the compute zone. raw and curated are deliberately absent."
  value       = { for k in local.shareable_bucket_keys : k => module.bucket[k].arn }
}

output "shareable_bucket_names" {
  description = "Names of the shareable buckets."
  value       = { for k in local.shareable_bucket_keys : k => module.bucket[k].id }
}

output "shared_kms_key_arn" {
  description = "KMS key of the shareable buckets."
  value       = aws_kms_key.shared.arn
}

output "service_kms_key_arn" {
  description = "KMS key of Secrets Manager secrets (decrypt needed by External Secrets)."
  value       = aws_kms_key.service.arn
}

output "secret_arns" {
  description = "Secrets Manager ARNs of what the compute zone may read: the connection strings and the online API's own secrets (values are never output). The pseudonymisation and token signing keys are deliberately absent."
  value = merge({ for k, s in aws_secretsmanager_secret.this : k => s.arn },
  { for k, s in aws_secretsmanager_secret.api : k => s.arn })
}

output "token_signing_key_secret_arn" {
  description = "The token signing key's secret, for the private zone's issuer only (never passed to the compute zone)."
  value       = aws_secretsmanager_secret.token_signing_key.arn
}

output "s3_link_endpoint_url" {
  description = "https URL of the S3 interface endpoint reached over the link (AWS_ENDPOINT_URL_S3 in the compute zone)."
  value       = "https://${replace(aws_vpc_endpoint.s3_link.dns_entry[0].dns_name, "*.", "bucket.")}"
}

output "s3_link_endpoint_id" {
  description = "ID of the S3 interface endpoint reached over the link."
  value       = aws_vpc_endpoint.s3_link.id
}

output "redis_endpoint" {
  description = "Feast online store host (TLS, one RBAC user per client)."
  value       = aws_elasticache_replication_group.redis.primary_endpoint_address
}

output "postgres_endpoint" {
  description = "Postgres host (TLS)."
  value       = aws_db_instance.postgres.address
}

# --- Private-only data (never passed to the compute zone) -------------------
output "private_bucket_names" {
  description = "raw and curated buckets: private zone only."
  value       = { for k in local.private_bucket_keys : k => module.bucket[k].id }
}

output "data_prep_role_arn" {
  description = "The only role allowed to read raw/ (edge workers)."
  value       = aws_iam_role.data_prep.arn
}

# --- `cluster` settings profile ---------------------------------------------
output "edge_worker_env" {
  description = "shoprank `cluster` profile for the private-zone edge workers (raw/curated access)."
  value = {
    SHOPRANK_PROFILE         = "cluster"
    SHOPRANK_STORE_ROOT      = module.bucket["curated"].url
    SHOPRANK_RAW_ROOT        = module.bucket["raw"].url
    SHOPRANK_MODEL_BASE_PATH = "${module.bucket["models"].url}/models"
    # the online API rolls its event log into served/ of the features bucket; the ingest reads it there
    SHOPRANK_SERVED_ROOT = module.bucket["features"].url
    # the private stage reads the key itself (data_prep may; nothing else in this zone)
    SHOPRANK_PSEUDONYM_KEY_SECRET_ARN = aws_secretsmanager_secret.pseudonym_key.arn
    AWS_REGION                        = local.region
  }
}

output "cluster_env_data" {
  description = "Data-zone half of the compute cluster's cluster profile (merged by the public_compute root). SHOPRANK_FEAST_* values are Secrets Manager ARNs, not secrets: the pipeline's; each namespace's SecretStore syncs its own (secret_arns)."
  value = {
    SHOPRANK_PROFILE            = "cluster"
    SHOPRANK_STORE_ROOT         = module.bucket["features"].url
    SHOPRANK_RAW_ROOT           = module.bucket["raw"].url
    SHOPRANK_MODEL_BASE_PATH    = "${module.bucket["models"].url}/models"
    SHOPRANK_SERVED_ROOT        = module.bucket["features"].url
    SHOPRANK_FEAST_ONLINE_STORE = aws_secretsmanager_secret.this["feast-online-store-kfp"].arn
    SHOPRANK_FEAST_REGISTRY     = aws_secretsmanager_secret.this["feast-registry"].arn
    AWS_REGION                  = local.region
    AWS_ENDPOINT_URL_S3         = "https://${replace(aws_vpc_endpoint.s3_link.dns_entry[0].dns_name, "*.", "bucket.")}"
  }
}

# --- for the zone root's postgresql provider (registry roles) ---------------
output "postgres_address" {
  description = "Postgres endpoint (private subnets only)."
  value       = aws_db_instance.postgres.address
}

output "postgres_admin_username" {
  description = "Master user, used only by Terraform's postgresql provider to create the application roles."
  value       = aws_db_instance.postgres.username
}

output "postgres_admin_password" {
  description = "Master password, never in a secret that leaves Terraform."
  value       = random_password.postgres_admin.result
  sensitive   = true
}

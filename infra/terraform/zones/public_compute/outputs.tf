output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = module.public_compute.cluster_name
}

output "vpc_id" {
  description = "Compute VPC."
  value       = module.public_compute.vpc_id
}

output "node_subnet_cidrs" {
  description = "Node/pod subnets."
  value       = module.public_compute.node_subnet_cidrs
}

output "node_route_table_ids" {
  description = "Route tables of the node subnets."
  value       = module.public_compute.node_route_table_ids
}

output "cluster_security_group_id" {
  description = "EKS cluster security group."
  value       = module.public_compute.cluster_security_group_id
}

output "workload_role_arns" {
  description = "IRSA role per workload, for the service-account annotations in infra/k8s."
  value       = module.public_compute.workload_role_arns
}

output "ebs_csi_role_arn" {
  description = "IRSA role of the EBS CSI driver."
  value       = module.public_compute.ebs_csi_role_arn
}

output "kfp_pipeline_root" {
  description = "KFP pipeline root (kfp-launcher defaultPipelineRoot)."
  value       = "s3://${local.data_zone.shareable_bucket_names["pipelines"]}/${module.public_compute.kfp_pipeline_root_prefix}"
}

output "cluster_autoscaler_role_arn" {
  description = "IRSA role of the cluster autoscaler (infra/k8s/install.sh installs it with this role)."
  value       = module.public_compute.cluster_autoscaler_role_arn
}

output "airflow_log_group" {
  description = "CloudWatch log group of Airflow task logs."
  value       = module.public_compute.airflow_log_group
}

# The shoprank `cluster` settings profile of every pod in the cluster. Secret
# values are NOT here: SHOPRANK_FEAST_ONLINE_STORE and SHOPRANK_FEAST_REGISTRY
# hold Secrets Manager ARNs, which External Secrets resolves in the cluster.
# infra/scripts/cluster_env.py turns this output into the overlay's files.
output "shoprank_cluster_env" {
  description = "Environment of the shoprank `cluster` profile (secret keys hold Secrets Manager ARNs)."
  value = merge(local.data_zone.cluster_env_data, {
    SHOPRANK_PROFILE           = "cluster"
    SHOPRANK_KFP_HOST          = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
    SHOPRANK_MODEL_SERVER_URL  = "http://tf-serving:8501"
    SHOPRANK_MODEL_SERVER_GRPC = "tf-serving:8500"
  })
}

output "secret_arns" {
  description = "Secrets Manager ARNs the cluster's SecretStores read (External Secrets remote keys): connection strings and the online API's own secrets."
  value       = local.data_zone.secret_arns
}

output "compute_vpc_cidr" {
  description = "CIDR of the compute VPC (the pods' NetworkPolicies allow HTTPS to its interface endpoints and the Kubernetes API)."
  value       = module.public_compute.vpc_cidr
}

output "data_zone_cidr" {
  description = "CIDR of the data zone (source range of the Airflow edge API load balancer; the pods' egress to Redis, Postgres and the S3 link endpoint)."
  value       = local.data_zone.vpc_cidr
}

output "aws_region" {
  description = "Region of the cluster."
  value       = var.aws_region
}

output "shoprank_cluster_secret_keys" {
  description = "Keys of shoprank_cluster_env whose value is a Secrets Manager ARN."
  value       = ["SHOPRANK_FEAST_ONLINE_STORE", "SHOPRANK_FEAST_REGISTRY"]
}

output "token_public_keys" {
  description = "PEM public keys the online API verifies shopper tokens with (var.token_public_keys; the ConfigMap shoprank-token-public-keys)."
  value       = var.token_public_keys
}

output "compute_kms_key_arn" {
  description = "The compute zone's KMS key: the online API's event-log volumes (StorageClass shoprank-gp3) are encrypted with it."
  value       = module.public_compute.compute_kms_key_arn
}

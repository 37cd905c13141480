output "vpc_id" {
  description = "Compute VPC."
  value       = aws_vpc.this.id
}

output "vpc_cidr" {
  description = "CIDR of the compute VPC."
  value       = aws_vpc.this.cidr_block
}

output "node_subnet_cidrs" {
  description = "Node/pod subnets: the only compute CIDRs routed to the data zone."
  value       = aws_subnet.nodes[*].cidr_block
}

output "node_route_table_ids" {
  description = "Route tables of the node subnets (the link adds routes to the data zone)."
  value       = aws_route_table.nodes[*].id
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_security_group_id" {
  description = "EKS cluster security group (attached to the managed nodes)."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "workload_role_arns" {
  description = "IRSA role ARN per workload (annotate the service accounts with them)."
  value       = { for k, r in aws_iam_role.workload : k => r.arn }
}

output "ebs_csi_role_arn" {
  description = "IRSA role of the EBS CSI driver."
  value       = aws_iam_role.platform["ebs_csi"].arn
}

output "cluster_autoscaler_role_arn" {
  description = "IRSA role of the cluster autoscaler (kube-system/cluster-autoscaler)."
  value       = aws_iam_role.platform["cluster_autoscaler"].arn
}

output "airflow_log_group" {
  description = "CloudWatch log group for Airflow remote task logs."
  value       = aws_cloudwatch_log_group.airflow.name
}

output "kfp_pipeline_root_prefix" {
  description = "Key prefix of the KFP pipeline root inside the pipelines bucket."
  value       = local.kfp_root_prefix
}

output "compute_kms_key_arn" {
  description = "The compute zone's KMS key (EKS secrets, node and persistent EBS volumes, logs)."
  value       = aws_kms_key.compute.arn
}

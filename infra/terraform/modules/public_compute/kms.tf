# Compute-zone key: EKS secrets envelope encryption, node EBS volumes and the
# zone's CloudWatch logs. It protects no data-zone data.
module "kms_policy" {
  source = "../kms_policy"

  log_group_patterns = { compute = "*${var.name_prefix}*" }
}

resource "aws_kms_key" "compute" {
  description             = "${var.name_prefix}: EKS secrets, node volumes, compute-zone logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      module.kms_policy.account_administration,
      module.kms_policy.cloudwatch_logs["compute"],
      # Managed node groups launch instances through the Auto Scaling
      # service-linked role, which must use the key for encrypted EBS.
      module.kms_policy.autoscaling_volumes,
    ]
  })

  tags = local.tags
}

resource "aws_kms_alias" "compute" {
  name          = "alias/${var.name_prefix}-compute"
  target_key_id = aws_kms_key.compute.key_id
}

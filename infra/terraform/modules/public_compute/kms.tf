# Compute-zone key: EKS secrets envelope encryption, node EBS volumes and the
# zone's CloudWatch logs. It protects no data-zone data.
resource "aws_kms_key" "compute" {
  description             = "${var.name_prefix}: EKS secrets, node volumes, compute-zone logs"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsForThisZone"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
        Resource  = "*"
        Condition = {
          ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*${var.name_prefix}*" }
        }
      },
      {
        # Managed node groups launch instances through the Auto Scaling
        # service-linked role, which must use the key for encrypted EBS.
        Sid    = "AutoScalingEncryptedVolumes"
        Effect = "Allow"
        # Matched by ARN in a condition: the service-linked role may not exist
        # yet when this key is created (a key policy naming it would fail).
        Principal = { AWS = "*" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
        Resource  = "*"
        Condition = {
          StringEquals = { "kms:CallerAccount" = local.account_id }
          ArnLike      = { "aws:PrincipalArn" = "arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling" }
        }
      },
    ]
  })

  tags = local.tags
}

resource "aws_kms_alias" "compute" {
  name          = "alias/${var.name_prefix}-compute"
  target_key_id = aws_kms_key.compute.key_id
}

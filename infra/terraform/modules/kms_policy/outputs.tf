output "account_administration" {
  description = "The account (IAM policies) administers the key."
  value = {
    Sid       = "AccountAdministration"
    Effect    = "Allow"
    Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
    Action    = "kms:*"
    Resource  = "*"
  }
}

output "cloudwatch_logs" {
  description = "Per key of var.log_group_patterns: CloudWatch Logs of this region may use the key for those log groups only."
  value = {
    for key, pattern in var.log_group_patterns : key => {
      Sid       = "CloudWatchLogsForThisZone"
      Effect    = "Allow"
      Principal = { Service = "logs.${local.region}.amazonaws.com" }
      Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
      Resource  = "*"
      Condition = {
        ArnLike = { "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${pattern}" }
      }
    }
  }
}

output "autoscaling_volumes" {
  description = "The Auto Scaling service-linked role may use the key for the encrypted EBS volumes of the instances it launches."
  value = {
    Sid    = "AutoScalingEncryptedVolumes"
    Effect = "Allow"
    # Matched by ARN in a condition: the service-linked role may not exist
    # yet when the key is created (a key policy naming it would fail).
    Principal = { AWS = "*" }
    Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
    Resource  = "*"
    Condition = {
      StringEquals = { "kms:CallerAccount" = local.account_id }
      ArnLike      = { "aws:PrincipalArn" = "arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling" }
    }
  }
}

# ---------------------------------------------------------------------------
# IAM roles for service accounts (IRSA).
#
# THE ACCESS MATRIX is infra/policy/access.json (`roles`): each role's zone,
# namespace, service accounts and S3 grants as bucket => [key prefixes]. The
# roles whose zone is "public" become the workloads below, on the SHAREABLE
# buckets passed in var.shareable_bucket_arns, which cannot contain raw or
# curated. The same file gives the private zone its data_prep role
# (modules/private_data/edge_workers.tf) and declares the data class of every
# prefix; infra/policy/zone_rules.py checks that no public role can read a
# prefix declared raw.
#
# External Secrets: one reader per namespace, the IRSA role of that
# namespace's SecretStore, limited to the secrets synced into it.
# ---------------------------------------------------------------------------

locals {
  access          = jsondecode(file("${path.module}/../../../policy/access.json"))
  kfp_root_prefix = "kfp/"

  secret_readers = {
    external_secrets_shoprank = {
      namespace        = "shoprank"
      service_accounts = ["external-secrets-store"]
      read             = {}
      write            = {}
      # the online API: its own Redis users (Feast, rate limits), the read-only registry, its
      # request-id secret and API keys; never the pseudonymisation or the token signing key
      secrets = ["feast-online-store-api", "feast-registry-reader", "rate-limits-redis", "request-id-key", "api-keys"]
    }
    external_secrets_airflow = {
      namespace        = "airflow"
      service_accounts = ["external-secrets-store"]
      read             = {}
      write            = {}
      secrets          = ["airflow-metadata", "feast-online-store-airflow", "feast-registry"]
    }
    external_secrets_kubeflow = {
      namespace        = "kubeflow"
      service_accounts = ["external-secrets-store"]
      read             = {}
      write            = {}
      secrets          = ["feast-online-store-kfp", "feast-registry"]
    }
  }

  workloads = merge(
    { for name, role in local.access.roles : name => merge(role, { secrets = [] }) if role.zone == "public" },
    local.secret_readers,
  )

  # bucket => prefixes listed by a workload (read or write), for ListBucket.
  workload_list_prefixes = {
    for name, w in local.workloads : name => {
      for b in distinct(concat(keys(w.read), keys(w.write))) :
      b => distinct(concat(lookup(w.read, b, []), lookup(w.write, b, [])))
    }
  }

  oidc_issuer = replace(aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://", "")
}

data "tls_certificate" "oidc" {
  url = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "this" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc.certificates[length(data.tls_certificate.oidc.certificates) - 1].sha1_fingerprint]
  tags            = local.tags
}

data "aws_iam_policy_document" "workload_assume" {
  for_each = local.workloads

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.this.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = [for sa in each.value.service_accounts : "system:serviceaccount:${each.value.namespace}:${sa}"]
    }
  }
}

resource "aws_iam_role" "workload" {
  for_each = local.workloads

  name               = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description        = "IRSA role of ${each.key} (${each.value.namespace})"
  assume_role_policy = data.aws_iam_policy_document.workload_assume[each.key].json
  tags               = merge(local.tags, { "shoprank:workload" = each.key })
}

data "aws_iam_policy_document" "workload" {
  for_each = local.workloads

  # List only inside the granted prefixes.
  dynamic "statement" {
    for_each = local.workload_list_prefixes[each.key]
    content {
      sid       = "List${replace(title(statement.key), "_", "")}"
      actions   = ["s3:ListBucket"]
      resources = [var.shareable_bucket_arns[statement.key]]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = [for p in statement.value : "${p}*"]
      }
    }
  }

  dynamic "statement" {
    for_each = each.value.read
    content {
      sid       = "Read${replace(title(statement.key), "_", "")}"
      actions   = ["s3:GetObject", "s3:GetObjectVersion"]
      resources = [for p in statement.value : "${var.shareable_bucket_arns[statement.key]}/${p}*"]
    }
  }

  dynamic "statement" {
    for_each = each.value.write
    content {
      sid       = "Write${replace(title(statement.key), "_", "")}"
      actions   = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
      resources = [for p in statement.value : "${var.shareable_bucket_arns[statement.key]}/${p}*"]
    }
  }

  # The shared key only, and only through S3.
  dynamic "statement" {
    for_each = length(local.workload_list_prefixes[each.key]) > 0 ? [1] : []
    content {
      sid       = "UseSharedKeyViaS3"
      actions   = length(each.value.write) > 0 ? ["kms:Decrypt", "kms:GenerateDataKey"] : ["kms:Decrypt"]
      resources = [var.shared_kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["s3.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = length(each.value.secrets) > 0 ? [1] : []
    content {
      sid       = "ReadConnectionSecrets"
      actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
      resources = [for s in each.value.secrets : var.secret_arns[s]]
    }
  }

  dynamic "statement" {
    for_each = length(each.value.secrets) > 0 ? [1] : []
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = [var.service_kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }

  dynamic "statement" {
    for_each = each.key == "airflow" ? [1] : []
    content {
      sid       = "AirflowRemoteLogs"
      actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:GetLogEvents", "logs:DescribeLogStreams"]
      resources = ["${aws_cloudwatch_log_group.airflow.arn}:*"]
    }
  }
}

resource "aws_iam_role_policy" "workload" {
  for_each = local.workloads

  name   = "shoprank-${replace(each.key, "_", "-")}"
  role   = aws_iam_role.workload[each.key].id
  policy = data.aws_iam_policy_document.workload[each.key].json
}

# --- Platform roles (no data access) ------------------------------------------
data "aws_iam_policy_document" "platform_assume" {
  for_each = {
    ebs_csi            = { namespace = "kube-system", service_account = "ebs-csi-controller-sa" }
    cluster_autoscaler = { namespace = "kube-system", service_account = "cluster-autoscaler" }
  }

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [aws_iam_openid_connect_provider.this.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = ["system:serviceaccount:${each.value.namespace}:${each.value.service_account}"]
    }
  }
}

resource "aws_iam_role" "platform" {
  for_each = data.aws_iam_policy_document.platform_assume

  name               = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  assume_role_policy = each.value.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "ebs_csi" {
  role       = aws_iam_role.platform["ebs_csi"].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
}

data "aws_iam_policy_document" "ebs_csi_kms" {
  statement {
    actions   = ["kms:CreateGrant", "kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:DescribeKey"]
    resources = [aws_kms_key.compute.arn]
  }
}

resource "aws_iam_role_policy" "ebs_csi_kms" {
  name   = "ebs-volumes-compute-key"
  role   = aws_iam_role.platform["ebs_csi"].id
  policy = data.aws_iam_policy_document.ebs_csi_kms.json
}

# The cluster autoscaler: reads every group (scale from zero needs the managed
# node groups' labels and taints, eks:DescribeNodegroup), but resizes only the
# autoscaling groups EKS tagged as this cluster's.
data "aws_iam_policy_document" "cluster_autoscaler" {
  statement {
    sid = "Describe"
    actions = [
      "autoscaling:DescribeAutoScalingGroups",
      "autoscaling:DescribeAutoScalingInstances",
      "autoscaling:DescribeLaunchConfigurations",
      "autoscaling:DescribeScalingActivities",
      "autoscaling:DescribeTags",
      "ec2:DescribeImages",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplateVersions",
      "ec2:GetInstanceTypesFromInstanceRequirements",
    ]
    resources = ["*"] # Describe* calls have no resource-level permissions
  }
  statement {
    sid       = "DescribeOwnNodegroups"
    actions   = ["eks:DescribeNodegroup"]
    resources = ["arn:${local.partition}:eks:${local.region}:${local.account_id}:nodegroup/${aws_eks_cluster.this.name}/*/*"]
  }
  statement {
    sid       = "ResizeOwnGroups"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/k8s.io/cluster-autoscaler/${aws_eks_cluster.this.name}"
      values   = ["owned"]
    }
  }
}

resource "aws_iam_role_policy" "cluster_autoscaler" {
  name   = "cluster-autoscaler"
  role   = aws_iam_role.platform["cluster_autoscaler"].id
  policy = data.aws_iam_policy_document.cluster_autoscaler.json
}

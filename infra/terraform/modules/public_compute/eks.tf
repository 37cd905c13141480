# ---------------------------------------------------------------------------
# EKS cluster with three managed node groups:
#   cpu      : platform (KFP, Airflow), online API, CPU serving
#   gpu_spot : training first. SPOT capacity, scaled from zero by the cluster
#              autoscaler when a GPU pod is pending, back to zero when idle.
#   gpu      : ON_DEMAND, the fallback when spot capacity is not there, and
#              GPU serving (which must not vanish with a spot reclaim).
# Both GPU groups are TAINTED nvidia.com/gpu=true:NoSchedule so that only pods
# that tolerate it - the ones asking for GPUs - land, and both carry the pool
# label the train task selects; `shoprank.io/capacity` tells them apart. The
# autoscaler's priority expander (infra/k8s/platform/cluster-autoscaler) tries
# spot first and falls back to on-demand when spot does not come up in time.
# ---------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "cluster" {
  name              = "/aws/eks/${var.name_prefix}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.compute.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "cluster_assume" {
  statement {
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.name_prefix}-eks-cluster"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_eks_cluster" "this" {
  name     = var.name_prefix
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = false
  }

  vpc_config {
    subnet_ids              = aws_subnet.nodes[*].id
    endpoint_private_access = true
    endpoint_public_access  = var.cluster_endpoint_public_access
    public_access_cidrs     = var.cluster_endpoint_public_access ? var.cluster_endpoint_public_access_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.compute.arn
    }
  }

  tags = local.tags

  depends_on = [aws_cloudwatch_log_group.cluster, aws_iam_role_policy_attachment.cluster]
}

resource "aws_eks_access_entry" "admins" {
  for_each = toset(var.cluster_admin_role_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  tags          = local.tags
}

resource "aws_eks_access_policy_association" "admins" {
  for_each = toset(var.cluster_admin_role_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }

  depends_on = [aws_eks_access_entry.admins]
}

locals {
  # NetworkPolicies (infra/k8s: default-deny egress in shoprank, airflow and kubeflow) are only
  # enforced when the VPC CNI runs its network policy agent.
  eks_addons = {
    vpc-cni    = { configuration = jsonencode({ enableNetworkPolicy = "true" }) }
    kube-proxy = { configuration = null }
    coredns    = { configuration = null }
  }
}

resource "aws_eks_addon" "this" {
  for_each = local.eks_addons

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  configuration_values        = each.value.configuration
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = local.tags

  depends_on = [aws_eks_node_group.cpu]
}

resource "aws_eks_addon" "ebs_csi" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "aws-ebs-csi-driver"
  service_account_role_arn    = aws_iam_role.platform["ebs_csi"].arn
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = local.tags

  depends_on = [aws_eks_node_group.cpu]
}

# --- Nodes ------------------------------------------------------------------
data "aws_iam_policy_document" "node_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

# The node role has NO data access: pods get AWS access only through IRSA.
resource "aws_iam_role" "node" {
  name               = "${var.name_prefix}-eks-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly", "AmazonSSMManagedInstanceCore"])

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.key}"
}

locals {
  # Root/data volume device per AMI family.
  node_volume = {
    cpu = { device = "/dev/xvda", size_gb = 100 } # AL2023: root volume
    gpu = { device = "/dev/xvdb", size_gb = 200 } # Bottlerocket: data volume (images)
  }
}

resource "aws_launch_template" "nodes" {
  for_each = local.node_volume

  name_prefix = "${var.name_prefix}-${each.key}-"

  # IMDSv2 only, one hop: pods cannot reach the node role, they use IRSA.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = each.value.device
    ebs {
      volume_size           = each.value.size_gb
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.compute.arn
      delete_on_termination = true
    }
  }

  monitoring {
    enabled = true
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name_prefix}-${each.key}-node" })
  }

  tags = local.tags
}

resource "aws_eks_node_group" "cpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "${var.name_prefix}-cpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.nodes[*].id
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = "ON_DEMAND"
  instance_types  = var.cpu_instance_types

  scaling_config {
    min_size     = var.cpu_scaling.min
    desired_size = var.cpu_scaling.desired
    max_size     = var.cpu_scaling.max
  }

  launch_template {
    id      = aws_launch_template.nodes["cpu"].id
    version = aws_launch_template.nodes["cpu"].latest_version
  }

  labels = { "shoprank.io/pool" = "cpu" }

  update_config {
    max_unavailable = 1
  }

  tags = local.tags

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

locals {
  # The two GPU node groups: the same nodes, taint and pool label; spot scales
  # from zero for training bursts, on-demand is the fallback and serves.
  gpu_groups = {
    gpu      = { capacity = "ON_DEMAND", name = "${var.name_prefix}-gpu", scaling = var.gpu_scaling }
    gpu_spot = { capacity = "SPOT", name = "${var.name_prefix}-gpu-spot", scaling = { min = 0, desired = 0, max = var.gpu_scaling.max } }
  }
}

resource "aws_eks_node_group" "gpu" {
  for_each = local.gpu_groups

  cluster_name    = aws_eks_cluster.this.name
  node_group_name = each.value.name
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = aws_subnet.nodes[*].id
  ami_type        = "BOTTLEROCKET_x86_64_NVIDIA" # NVIDIA driver + device plugin built in
  capacity_type   = each.value.capacity
  # spot: several types are more likely to find capacity than one
  instance_types = var.gpu_instance_types

  scaling_config {
    min_size     = each.value.scaling.min
    desired_size = each.value.scaling.desired
    max_size     = each.value.scaling.max
  }

  launch_template {
    id      = aws_launch_template.nodes["gpu"].id
    version = aws_launch_template.nodes["gpu"].latest_version
  }

  labels = { "shoprank.io/pool" = "gpu", "shoprank.io/capacity" = lower(replace(each.value.capacity, "_", "-")) }

  # ZONE RULE: GPU nodes are tainted; only pods that request GPUs (and so
  # carry the matching toleration) are scheduled here.
  taint {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  update_config {
    max_unavailable = 1
  }

  tags = local.tags

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# Airflow task logs (remote logging), in this zone's KMS key.
resource "aws_cloudwatch_log_group" "airflow" {
  name              = "/shoprank/${var.name_prefix}/airflow/tasks"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.compute.arn
  tags              = local.tags
}

# ---------------------------------------------------------------------------
# Key-policy statements shared by the zones' customer-managed keys. No
# resources: each key in private_data/kms.tf and public_compute/kms.tf builds
# its policy from these, so a grant is written once and reads the same in
# every key.
# ---------------------------------------------------------------------------

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}

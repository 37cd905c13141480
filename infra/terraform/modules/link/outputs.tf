output "peering_connection_id" {
  description = "VPC peering connection between the zones."
  value       = aws_vpc_peering_connection.this.id
}

output "flows" {
  description = "The flows allowed across the link (documentation for reviewers and the README)."
  value = {
    compute_to_data = { for k, v in local.compute_to_data : k => { port = v.port, what = v.what } }
    data_to_compute = { for k, v in local.data_to_compute : k => { port = v.listener_port, node_port = v.node_port, what = v.what } }
  }
}

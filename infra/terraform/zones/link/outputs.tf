output "peering_connection_id" {
  description = "VPC peering between the zones."
  value       = module.link.peering_connection_id
}

output "flows" {
  description = "Flows allowed across the link."
  value       = module.link.flows
}

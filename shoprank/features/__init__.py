"""Features: pseudonymisation at the zone boundary, feature computation, the Feast store."""

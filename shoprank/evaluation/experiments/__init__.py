"""Online experiments: configuration and assignment, interleaving, outcomes per arm, and the decision."""

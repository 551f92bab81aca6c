"""A read-only TAXII 2.1 server over the node's officer API (design in taxii.app)."""

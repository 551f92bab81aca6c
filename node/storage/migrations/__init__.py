"""Alembic migrations of the node's database (run at start by ``node.server``)."""

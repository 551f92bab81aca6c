"""The officers' commands (``intelshare alert ...``, ``intelshare case ...``).

Client side only: these talk to a node through its gRPC API
(:mod:`node.cli.client`) and import nothing of the server but the pure
wire forms in :mod:`node.schema` (an import-linter contract checks it).
"""

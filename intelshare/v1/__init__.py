"""Generated protobuf and gRPC modules for package intelshare.v1."""

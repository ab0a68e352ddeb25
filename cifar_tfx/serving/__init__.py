"""Clients of the served model: REST, gRPC and an in-process SavedModel, one request shape."""

"""Prometheus remote write 1.0: the route, and the snappy-compressed protobuf it reads."""

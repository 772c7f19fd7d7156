"""The e2e tier: Ciuic against a real Kubernetes control plane (see conftest.py)."""

"""The only code that talks to a Kubernetes API (kubernetes-asyncio)."""

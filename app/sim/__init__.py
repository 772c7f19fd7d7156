"""The cluster simulator and scaling benchmark (pure: no I/O, no wall clock)."""

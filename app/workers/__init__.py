"""Background loops (rollups and retention today; reconcile, refit and rollouts later),
each run as a guarded task that logs, backs off and restarts, and stops cleanly."""

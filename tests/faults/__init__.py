"""The faults of issue #8, one file each, each with assertions on what is kept.

- test_postgres_restart.py   PostgreSQL stopped (fast, immediate) under sustained pushes
- test_kube_api_faults.py    Kubernetes API 5xx, 409, timeouts, stalled/dropped watches
- test_metrics_stop.py       metrics stop arriving (hold, "stale"); pause/resume through the API
- test_clock_skew.py         skewed timestamps in pushes
- test_client_disconnect.py  a pusher hanging up mid-body: nothing stored, no traceback

The leader SIGKILLed mid-rollout (takeover within the lease, the rollout resumed) runs on a real
control plane: tests/e2e/test_failover.py. Elsewhere, proving parts in more detail:
tests/api/test_dependencies_down.py (database unreachable from the start),
tests/workers/test_leader.py (advisory lock / file lock failover), tests/kube/test_lease.py
(Lease crash, partition, shutdown), tests/kube/test_cluster.py (the adapter's retries, 410
relist, dropped watch resume), tests/workers/test_rollouts.py (restart resumes a rollout,
cluster outage at a step), tests/policy/test_safety_rails.py (wild metrics and forecasts).
"""

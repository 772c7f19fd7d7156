"""The e2e tier: Ciuic against a real Kubernetes control plane (issue 15).

etcd, kube-apiserver, kube-controller-manager and kube-scheduler v1.36 with KWOK's fake nodes,
started once per session from the folder named by CIUIC_KUBE_ASSETS (envtest's convention;
scripts/test sets it to ../shared/kube when that exists); each test in a namespace of its own.
Without it the tier is skipped, naming the variable; under CI=true it fails. See conftest.py,
and controlplane.py for the admin's client (plain REST, not our client library).

- test_scaling.py   a scaler scales a real Deployment through `scale`, pods Ready after KWOK's
                    delay, the learned cold start equal to it from real timestamps; a missing
                    target's 404 on the status; terminating (still Ready) pods not counted;
                    watches the server ends resumed from their resourceVersion; `kubectl
                    scale` seen and overridden at the next decision; a real 409 on a stale
                    resourceVersion re-read and retried; dry run writes nothing (the objects'
                    resourceVersions)                                          (items 1, 2)
- test_failover.py  two `ciuic serve` processes on a real Lease: one leads, the other takes
                    over within the lease after SIGKILL, never two leaders, each decision
                    applied once, the killed one back as a follower; a rollout's surge plan on
                    the real ReplicaSets (surge pods Ready first, never fewer than 3 Ready,
                    old pods drained), resumed by the new leader after the kill   (items 3, 5)
- test_rollouts.py  a cancelled rollout restores the template the API server stored, exactly
- test_scaledown.py  4 pods, the 2 youngest busy: the scale to 2 deletes the 2 idle ones (the
                    pods' deletion costs from their pushed load, set before the scale); a
                    pod no node can take is named in the reasons past its cold start and
                    blocks no scale-down
- test_rbac.py      deploy/kubernetes applied; `ciuic serve` with only its ServiceAccount's
                    token (TokenRequest, TLS verified) does everything; nothing beyond the
                    manifests (SelfSubjectRulesReview); without any one grant, what needs it
                    fails naming the verb and resource (status, rollout, /readyz)   (item 4)
- test_resize.py    the partial pod's `pods/NAME/resize` passes the real validation (QoS kept)
                    and is stored with the GPU untouched; refused on a node without resize
                    support, with the API server's reason                          (item 6)
- bench/kube_scale.py   200 Deployments and scalers reconciled every 5 s: Ciuic's CPU, the
                    requests it sends (priority-and-fairness's own counters), its watches
                                                                                   (item 7)

The emulator (testkit/kube_emulator.py) stays where it earns its place: faults a real API server
does not produce on demand, and checks that must run without a control plane.
- tests/faults/test_kube_api_faults.py  5xx, 429, timeouts (a PATCH applied after the client
  gave up), conflicts in a row past the bound, a stalled watch expiring (410 on resume),
  dropped watch connections: each decision applied once through all of it;
- tests/kube/test_cluster.py  the adapter's retries and backoff, 410 relist, a dropped watch,
  pod-list errors, 403 per verb; counts and cold starts on a fake clock; warm caches making no
  request; one watch per namespace for many targets;
- tests/kube/test_lease.py  a partitioned leader (every request failing: it steps down before
  anyone may take over), a transient renew failure, candidates racing for a missing Lease;
- tests/kube/test_resize.py  a cluster without the resize subresource (before 1.33);
- tests/kube/test_manifests.py  the manifests against the code without a cluster (probes,
  settings, kustomization);
- bench/burst.py  burst-to-PATCH latency, without a control plane's own noise.
"""

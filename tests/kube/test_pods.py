"""Which of a target's pods wait for a node (the policy gives up on them past a cold start)."""

from __future__ import annotations

from app.kube.pods import ColdStarts, LabelSelector, PodView, TargetPods


def pod(name: str, *, phase: str = "Running", scheduled: bool = True, created: float = 100.0,
        terminating: bool = False) -> PodView:  # fmt: skip
    return PodView(name=name, uid=name, resource_version="1", created=created,
                   ready=phase == "Running", warm=True, serving_since=None,
                   terminating=terminating, phase=phase, labels={"app": "llm"},
                   scheduled=scheduled)  # fmt: skip


def test_unscheduled_lists_the_pending_pods_no_node_took_oldest_first() -> None:
    mine = TargetPods(LabelSelector((("app", "llm"),)), ColdStarts())
    for p in (
        pod("serving"),
        pod("pulling-image", phase="Pending"),  # on a node, starting: coming
        pod("no-node", phase="Pending", scheduled=False, created=50.0),
        pod("no-node-either", phase="Pending", scheduled=False, created=70.0),
        pod("deleted", phase="Pending", scheduled=False, terminating=True),
    ):
        mine.apply("ADDED", p)
    assert mine.unscheduled() == (50.0, 70.0)
    assert mine.counts() == (1, 3)  # still starting pods: the policy decides they are stuck

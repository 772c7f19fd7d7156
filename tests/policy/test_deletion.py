"""Which pods a scale-down takes: the idle ones, through the pods' deletion costs."""

from __future__ import annotations

import pytest

from app.policy.deletion import deletion_costs


@pytest.mark.parametrize(
    ("busy", "current", "written"),
    [
        # two busy pods, two idle: the idle ones cost least, so the controller takes them
        ({"a": 4.0, "b": 0.0, "c": 3.0, "d": 0.0}, {}, {"a": 4000, "b": 0, "c": 3000, "d": 0}),
        # costs already in place: nothing to write, no request
        ({"a": 4.0, "b": 0.0}, {"a": 4000, "b": 0}, {}),
        # only the pod whose load moved is patched
        ({"a": 4.0, "b": 1.5}, {"a": 4000, "b": 0}, {"b": 1500}),
        # a pod that pushed nothing sits in the middle: neither kept nor taken first
        ({"a": 0.0, "b": None, "c": 8.0}, {}, {"a": 0, "b": 0, "c": 8000}),
        ({"a": 0.0, "b": None, "c": 8.0, "d": 9.0}, {}, {"a": 0, "b": 8000, "c": 8000, "d": 9000}),
        # no pod's load known: no preference, the controller's own order stands
        ({"a": None, "b": None}, {"a": 5}, {}),
        ({}, {}, {}),
        # small utilisations stay apart once rounded; the int32 range is kept
        ({"a": 0.25, "b": 0.26, "c": 1e12}, {}, {"a": 250, "b": 260, "c": 2**31 - 1}),
    ],
    ids=[
        "idle-pods-cost-least",
        "unchanged-writes-nothing",
        "only-the-changed-pod",
        "unknown-pod-gets-the-median",
        "unknown-pod-gets-the-lower-median",
        "nothing-known-nothing-written",
        "no-pods",
        "fractions-kept-apart-and-clipped",
    ],
)
def test_deletion_costs(
    busy: dict[str, float | None], current: dict[str, int | None], written: dict[str, int]
) -> None:
    assert deletion_costs(busy, current) == written


def test_a_busier_pod_never_costs_less() -> None:
    """The order the controller deletes in follows the load, whatever its unit."""
    loads = [0.0, 0.01, 0.5, 1.0, 3.0, 97.5, 1e6]
    costs = deletion_costs({str(i): v for i, v in enumerate(loads)}, {})
    assert [costs[str(i)] for i in range(len(loads))] == sorted(costs.values())

"""PromQL-style selectors: what parses, what matches, what is refused."""

from __future__ import annotations

import pytest

from app.store.selector import SelectorError, parse_selector

LABELS = {"deployment": "deepseek", "pod": "deepseek-7b-0", "zone": "eu"}


@pytest.mark.parametrize(
    ("text", "name", "labels", "matches"),
    [
        pytest.param("gpu_utilization", "gpu_utilization", LABELS, True, id="bare-name"),
        pytest.param("gpu_utilization", "request_queue", LABELS, False, id="other-name"),
        pytest.param(
            'gpu_utilization{deployment="deepseek"}', "gpu_utilization", LABELS, True, id="eq"
        ),
        pytest.param(
            'gpu_utilization{deployment!="deepseek"}', "gpu_utilization", LABELS, False, id="neq"
        ),
        pytest.param(
            'gpu_utilization{pod=~"deepseek-.*"}', "gpu_utilization", LABELS, True, id="re"
        ),
        pytest.param(
            'gpu_utilization{pod=~"deepseek"}', "gpu_utilization", LABELS, False, id="re-anchored"
        ),
        pytest.param('gpu_utilization{pod!~"other-.*"}', "gpu_utilization", LABELS, True, id="nre"),
        pytest.param(
            '{__name__="gpu_utilization", zone="eu"}',
            "gpu_utilization",
            LABELS,
            True,
            id="name-label",
        ),
        pytest.param('{deployment="deepseek"}', "anything", LABELS, True, id="labels-only"),
        pytest.param('x{missing=""}', "x", LABELS, True, id="empty-matches-absent"),
        pytest.param(
            "x{ zone = 'eu' , }", "x", LABELS, True, id="spaces-single-quotes-trailing-comma"
        ),
        pytest.param('x{zone="e\\"u"}', "x", {"zone": 'e"u'}, True, id="escaped-quote"),
    ],
)
def test_matching(text: str, name: str, labels: dict[str, str], matches: bool) -> None:
    assert parse_selector(text).matches(name, labels) is matches


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("{}", id="no-matchers"),
        pytest.param('{a=""}', id="only-empty-matcher"),
        pytest.param("x{a}", id="no-operator"),
        pytest.param("x{a=b}", id="unquoted"),
        pytest.param('x{a="b"', id="unclosed"),
        pytest.param('x{a=~"("}', id="bad-regex"),
        pytest.param('x{a="b"} y', id="trailing-text"),
        pytest.param("x[5m]", id="range-vector"),
        pytest.param('x{1a="b"}', id="bad-label"),
    ],
)
def test_malformed_selectors(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(text)

"""Hypothesis on the two text inputs people write by hand: the Pushgateway text exposition and
the scaler spec.

Each is fuzzed in bulk at the parser (fast) and on a smaller sample over real HTTP: the answer
is a success or a 4xx JSON error, never a 5xx; a refusal changes nothing that can be read back;
what is accepted reads back as prometheus_client's own parser (pushes) or round-trips (specs).
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from app.api.pushgateway.exposition import parse_push_body
from app.api.pushgateway.grouping import LABEL_NAME
from app.errors import BadRequest
from app.policy import ScalerSpec, SpecError, parse_spec
from tests.conftest import LiveServer

BULK = settings(max_examples=300, derandomize=True, deadline=None, database=None, print_blob=True)
OVER_HTTP = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BRIEF: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[1] / "policy" / "brief.yaml").read_text()
)
GROUPING = {"job": "fuzz"}

# --- the Pushgateway text exposition --------------------------------------------------------

NAMES = st.sampled_from(["gpu_utilization", "queue", "x_total", "x", "h", "h_bucket", "1bad"])
LABEL_NAMES = st.sampled_from(["pod", "le", "quantile", "job", "instance", "__x", "9z", "a-b"])
LABEL_VALUES = st.one_of(
    st.sampled_from(["", "a", 'q"uote', "back\\slash", "new\nline", "é", "0.5", "+Inf"]),
    st.text(max_size=8),
)
VALUES = st.one_of(
    st.sampled_from(["NaN", "+Inf", "-Inf", "1e308", "-0", "1.5", "0x1F", "", "1_000"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
TYPES = st.sampled_from(["gauge", "counter", "untyped", "histogram", "summary", "bogus"])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


@st.composite
def sample_lines(draw: st.DrawFn) -> str:
    name = draw(NAMES)
    labels = draw(st.dictionaries(LABEL_NAMES, LABEL_VALUES, max_size=3))
    raw = draw(st.booleans())  # now and then a value left unescaped
    inner = ",".join(f'{k}="{v if raw else _escape(v)}"' for k, v in labels.items())
    line = name + (f"{{{inner}}}" if labels or draw(st.booleans()) else "")
    line += " " + draw(VALUES)
    if draw(st.integers(0, 9)) == 0:
        line += " " + str(draw(st.integers(-(2**40), 2**45)))  # a timestamp
    return line


@st.composite
def header_lines(draw: st.DrawFn) -> str:
    name = draw(NAMES)
    if draw(st.booleans()):
        return f"# TYPE {name} {draw(TYPES)}"
    return f"# HELP {name} {_escape(draw(st.text(max_size=10)))}"


EXPOSITION = st.one_of(
    st.lists(st.one_of(sample_lines(), header_lines()), max_size=8).map(
        lambda lines: "".join(line + "\n" for line in lines)
    ),
    st.lists(st.one_of(sample_lines(), header_lines(), st.text(max_size=20)), max_size=5).map(
        "\n".join
    ),
    st.text(max_size=60),
)


def _value_key(value: float) -> object:
    return "NaN" if math.isnan(value) else float(value)


def _reference(text: str) -> Counter[tuple[str, tuple[tuple[str, str], ...], object]]:
    """The samples prometheus_client's parser reads, with the grouping key applied."""
    return Counter(
        (s.name, tuple(sorted({**s.labels, **GROUPING}.items())), _value_key(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    )


def _refusal_is_justified(code: str, text: str) -> bool:
    try:
        families = list(text_string_to_metric_families(text))
    except Exception:  # what the reference cannot read is fairly refused
        return True
    samples = [s for f in families for s in f.samples]
    if code == "timestamp_not_allowed":
        return any(s.timestamp is not None for s in samples)
    if code == "invalid_label":
        return any(not LABEL_NAME.match(k) or k.startswith("__") for s in samples for k in s.labels)
    if code == "duplicate_series":
        keys = [(s.name, tuple(sorted({**s.labels, **GROUPING}.items()))) for s in samples]
        return len(keys) != len(set(keys))
    if code == "type_clash":
        declared = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
        return len(declared) != len(set(declared)) or len({f.name for f in families}) < len(
            families
        )
    return False


@BULK
@given(text=EXPOSITION)
def test_the_push_parser_agrees_with_prometheus_client_or_says_why_not(text: str) -> None:
    try:
        families = parse_push_body(text, GROUPING)
    except BadRequest as refused:
        event(f"refused: {refused.code}")
        assert refused.status == 400 and refused.message
        assert _refusal_is_justified(refused.code, text), (refused.code, refused.message)
        return
    ours = Counter((s.name, s.items, _value_key(s.value)) for f in families for s in f.samples)
    assert ours == _reference(text)


def _pushgateway_state(server: LiveServer) -> tuple[object, object]:
    """The groups' families and the series. A refused push may stamp its group's
    push_failure_time_seconds (and create the group empty), as the Pushgateway does: that
    bookkeeping is left out, data is not."""
    groups = [
        {k: v for k, v in g.items() if k not in _FAILURE_BOOKKEEPING}
        for g in httpx.get(f"{server.url}/api/v1/metrics").json()["data"]
        if g["push_time_seconds"]["metrics"][0]["value"] != "0"  # not created by a failure
    ]
    series = httpx.get(f"{server.url}/v1/series", params={"match": '{job=~".+"}'}).json()
    return groups, series


_FAILURE_BOOKKEEPING = ("push_failure_time_seconds", "last_push_successful")


def _read_back(server: LiveServer) -> Counter[tuple[tuple[tuple[str, str], ...], object]]:
    """Gauge, counter and untyped samples of the fuzzed group, as the JSON API shows them."""
    [group] = [
        g
        for g in httpx.get(f"{server.url}/api/v1/metrics").json()["data"]
        if g["labels"]["job"] == GROUPING["job"]
    ]
    out: Counter[tuple[tuple[tuple[str, str], ...], object]] = Counter()
    for key, family in group.items():
        if key in ("labels", "last_push_successful", "push_time_seconds") or key.startswith(
            "push_failure"
        ):
            continue
        if family["type"] in ("HISTOGRAM", "SUMMARY"):
            continue
        for m in family["metrics"]:
            out[(tuple(sorted(m["labels"].items())), _value_key(float(m["value"])))] += 1
    return out


def _expected_back(text: str) -> Counter[tuple[tuple[tuple[str, str], ...], object]]:
    out: Counter[tuple[tuple[tuple[str, str], ...], object]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.type in ("histogram", "summary", "gaugehistogram"):
            continue
        for s in family.samples:
            labels = {"instance": "", **s.labels, **GROUPING}
            out[(tuple(sorted(labels.items())), _value_key(s.value))] += 1
    return out


@OVER_HTTP
@given(text=EXPOSITION)
def test_a_push_over_http_is_stored_as_parsed_or_refused_without_a_trace(
    server: LiveServer, text: str
) -> None:
    before = _pushgateway_state(server)
    response = httpx.put(
        f"{server.url}/metrics/job/{GROUPING['job']}",
        content=text.encode(),
        headers={"Content-Type": "text/plain; version=0.0.4"},
    )
    assert response.status_code < 500, response.text
    event(f"HTTP {response.status_code}")
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"]
        assert _pushgateway_state(server) == before
        return
    assert response.status_code == 200
    assert _read_back(server) == _expected_back(text)


def test_garbage_bytes_are_refused_and_change_nothing(server: LiveServer) -> None:
    before = _pushgateway_state(server)
    for body in (b"\xff\xfe\x00", b"\x1f\x8b\x08\x00junk", b"up 1\n" + b"\xc3\x28"):
        response = httpx.post(f"{server.url}/metrics/job/fuzz", content=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "parse_error"
    assert _pushgateway_state(server) == before


# --- the scaler spec ------------------------------------------------------------------------

# Strings the spec's fields use, and near misses of them.
PLAUSIBLE = st.sampled_from(
    [
        "",
        "30s",
        "5m",
        "1h",
        "-1s",
        "85%",
        "101%",
        "<5",
        ">5",
        "0.5/s",
        "30/min",
        "learn",
        "deepseek-service",
        "Europe/Paris",
        "Mars/Olympus",
        "0 9 * * *",
        "* * *",
        "prophet",
        "max",
        "weighted",
        "dry_run",
        "gpu_utilization",
        "request_queue",
        "NaN",
        "1e400",
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    PLAUSIBLE,
    st.text(max_size=12),
)
VALUES_ANY = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """The brief's spec with a few keys replaced, removed or added, anywhere in the tree."""
    doc = copy.deepcopy(BRIEF)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            continue
        *parents, last = path
        parent: Any = doc
        for step in parents:
            parent = parent[step]
        action = draw(st.sampled_from(["nudge", "nudge", "replace", "delete", "add"]))
        if action == "nudge":  # a plausible edit of the same kind: most stay valid
            current = parent[last]
            if isinstance(current, bool):
                parent[last] = not current
            elif isinstance(current, int | float):
                parent[last] = draw(st.one_of(st.integers(0, 20), st.floats(0, 20)))
            elif isinstance(current, str):
                parent[last] = draw(PLAUSIBLE)
        elif action == "delete":
            del parent[last]
        elif action == "replace":
            parent[last] = draw(VALUES_ANY)
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["foo", "weight", "min_replicas", "window"]))] = draw(
                VALUES_ANY
            )
    return doc


def _issues_are_well_formed(error: SpecError) -> None:
    assert error.issues
    for issue in error.issues:
        assert isinstance(issue["field"], str)
        assert isinstance(issue["rule"], str) and issue["rule"]
        assert isinstance(issue["message"], str) and issue["message"]


@BULK
@given(doc=mutated_specs())
def test_the_spec_parser_accepts_and_round_trips_or_names_the_problem(
    doc: dict[str, Any],
) -> None:
    try:
        spec = parse_spec(doc)
    except SpecError as error:
        event("refused")
        _issues_are_well_formed(error)
        return
    event("valid")
    assert isinstance(spec, ScalerSpec)
    for defaults in (False, True):
        document = spec.to_document(defaults=defaults)
        again = parse_spec(json.loads(json.dumps(document)))
        assert again == spec
        assert again.to_document(defaults=defaults) == document


@BULK
@given(doc=st.one_of(VALUES_ANY, st.dictionaries(st.text(max_size=10), VALUES_ANY)))
def test_the_spec_parser_never_raises_anything_else_on_arbitrary_documents(doc: Any) -> None:
    try:
        parse_spec(doc)
    except SpecError as error:
        _issues_are_well_formed(error)


def _scaler_names(server: LiveServer) -> list[str]:
    return [s["name"] for s in httpx.get(f"{server.url}/v1/scalers").json()]


@OVER_HTTP
@given(doc=mutated_specs())
def test_a_spec_over_http_is_created_or_refused_without_a_trace(
    server: LiveServer, doc: dict[str, Any]
) -> None:
    before = _scaler_names(server)
    response = httpx.post(
        f"{server.url}/v1/scalers",
        content=json.dumps(doc),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (201, 422), response.text
    event(f"HTTP {response.status_code}")
    if response.status_code == 422:
        _issues_are_well_formed(SpecError(response.json()["error"]["details"]))
        assert _scaler_names(server) == before
        return
    name = response.json()["name"]
    assert sorted(_scaler_names(server)) == sorted([*before, name])
    assert httpx.delete(f"{server.url}/v1/scalers/{name}").status_code == 204

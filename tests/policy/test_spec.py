"""The scaler spec: the brief's file verbatim, defaults, round trips, and bad specs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.policy import ScalerSpec, SpecError, parse_spec
from app.policy.spec import (
    DEFAULT_COLD_START_S,
    format_duration,
    parse_duration,
)
from tests.policy.helpers import BRIEF_PATH, brief_document

DELETE = object()


def with_(path: str, value: object) -> dict[str, Any]:
    """The brief's document with one dotted path set (or deleted)."""
    doc = copy.deepcopy(brief_document())
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    key: Any = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return doc


# ---------------------------------------------------------------------------------------------
# the brief's file


def test_brief_yaml_is_accepted_verbatim_with_defaults() -> None:
    s = parse_spec(brief_document())
    assert s.target.name == "deepseek-service"
    assert (s.target.kind, s.target.namespace) == ("Deployment", "default")
    assert s.scaler == "predictive"
    gpu, queue = s.metrics
    assert (gpu.name, gpu.target.value, gpu.target.form, gpu.weight) == (
        "gpu_utilization",
        85.0,
        "percent",
        0.6,
    )
    assert (queue.target.value, queue.target.form, queue.aggregation) == (5.0, "below", "avg")
    assert s.algorithm.name == "prophet"
    assert s.algorithm.params == {"seasonality": "daily", "growth": "logistic"}
    assert (s.preheat.enabled, s.preheat.min_ready, s.preheat.strategy) == (True, 1, "eager")
    assert [(e.time, e.min_replicas) for e in s.schedule] == [("0 9 * * *", 4), ("0 23 * * *", 2)]
    assert s.emergency.triggers[0].duration == 30.0
    assert s.emergency.burst_multiplier == 3.0
    # Defaults that make the brief's file complete.
    assert (s.min_replicas, s.max_replicas, s.combine, s.tolerance) == (1, 10, "weighted", 0.1)
    assert s.timezone == "UTC" and s.mode == "apply" and s.cold_start == "learn"
    # The calibrated median band; the capacity learned from what the pods push.
    assert s.forecast.quantile == 0.5
    assert s.capacity.learned and s.capacity.signal == "request_rate"
    assert (s.reactive.window, s.reactive.panic, s.reactive.drain) == (60.0, 2.0, 30.0)
    assert s.fractional.enabled is False and s.fractional.min_fraction == 0.3
    assert s.fallback.on_missing == "hold" and s.scaler_name == "deepseek-service"
    # No `behavior`: no HPA windows; scale-up limited to Knative's x1000 (or +4) per 15 s.
    assert s.behavior is None
    up, down = s.effective_behavior.scale_up, s.effective_behavior.scale_down
    assert up.stabilization_window_seconds == 0 and up.select_policy == "Max"
    assert [(p.type, p.value, p.period_seconds) for p in up.policies] == [
        ("Pods", 4, 15),
        ("Percent", 99900, 15),
    ]
    assert down.stabilization_window_seconds == 0
    assert [(p.type, p.value, p.period_seconds) for p in down.policies] == [("Percent", 100, 15)]
    # A `behavior` given is HPA v2's, its defaults included.
    hpa = parse_spec({**brief_document(), "behavior": {}}).effective_behavior
    assert hpa.scale_down.stabilization_window_seconds == 300
    assert [(p.type, p.value) for p in hpa.scale_up.policies] == [("Pods", 4), ("Percent", 100)]
    assert DEFAULT_COLD_START_S == 60.0


def test_to_document_renders_the_briefs_shape() -> None:
    doc = parse_spec(brief_document()).to_document()
    assert doc["target"] == "deepseek-service"
    assert [m["target"] for m in doc["metrics"]] == ["85%", "<5"]
    assert doc["emergency"]["triggers"][0]["duration"] == "30s"
    assert set(doc) == set(brief_document())  # only what the author wrote


@pytest.mark.parametrize(
    "dump,load",
    [
        pytest.param(yaml.safe_dump, yaml.safe_load, id="yaml"),
        pytest.param(json.dumps, json.loads, id="json"),
    ],
)
@pytest.mark.parametrize("defaults", [False, True], ids=["as-written", "with-defaults"])
def test_brief_round_trips(dump: Any, load: Any, defaults: bool) -> None:
    s = parse_spec(brief_document())
    again = parse_spec(load(dump(s.to_document(defaults=defaults))))
    assert again == s


QUEUE_TOTAL_TRIGGER = """\
target: deepseek-service
metrics:
  - name: gpu_utilization
    weight: 0.6
    target: 85%
  - name: request_queue
    weight: 0.4
    target: <5
emergency:
  enabled: true
  burst_multiplier: 3.0
  triggers:
    - metric: request_queue
      threshold: 50
      duration: 30s
      aggregation: sum   # 50 waiting in all, not per pod
"""


@pytest.mark.parametrize("defaults", [False, True], ids=["as-written", "with-defaults"])
def test_a_trigger_aggregation_round_trips_through_yaml(defaults: bool) -> None:
    s = parse_spec(yaml.safe_load(QUEUE_TOTAL_TRIGGER))
    [trigger] = s.emergency.triggers
    assert trigger.aggregation == "sum"
    # the reactive step still reads the per-pod average against "<5"
    assert s.aggregation_of("request_queue") == "avg"
    assert s.trigger_aggregation(trigger) == "sum"
    text = yaml.safe_dump(s.to_document(defaults=defaults))
    assert "aggregation: sum" in text
    again = parse_spec(yaml.safe_load(text))
    assert again == s and again.emergency.triggers[0].aggregation == "sum"


def test_the_briefs_trigger_keeps_reading_the_metric_as_aggregated() -> None:
    s = parse_spec(brief_document())
    [trigger] = s.emergency.triggers
    assert trigger.aggregation is None  # not written: as the metric is aggregated in metrics:
    assert s.trigger_aggregation(trigger) == "avg"
    assert s.extra_readings == ()
    for defaults in (False, True):  # never rendered, so the brief's file comes back as written
        assert "aggregation" not in s.to_document(defaults=defaults)["emergency"]["triggers"][0]


@pytest.mark.parametrize(
    "metric_aggregation,trigger_aggregation,enabled,extra",
    [
        # the trigger reads the total of a per-pod metric: one more reading
        pytest.param("avg", "sum", True, (("request_queue", "sum"),), id="avg-metric-sum-trigger"),
        # the trigger names the metric's own aggregation: nothing more to read
        pytest.param("sum", "sum", True, (), id="same-as-metric"),
        # no aggregation on the trigger: the metric's reading
        pytest.param("max", None, True, (), id="as-aggregated"),
        # emergency off: nobody reads it
        pytest.param("avg", "max", False, (), id="disabled"),
    ],
)
def test_extra_readings_are_what_triggers_read_beyond_the_metrics(
    metric_aggregation: str, trigger_aggregation: str | None, enabled: bool, extra: object
) -> None:
    doc = yaml.safe_load(QUEUE_TOTAL_TRIGGER)
    doc["metrics"][1]["aggregation"] = metric_aggregation
    doc["emergency"]["enabled"] = enabled
    doc["emergency"]["triggers"][0]["aggregation"] = trigger_aggregation
    doc["emergency"]["triggers"].append(dict(doc["emergency"]["triggers"][0], threshold=80))
    assert parse_spec(doc).extra_readings == extra  # one pair even for two triggers


RICH: dict[str, Any] = {
    "name": "ds-7b",
    "target": {"kind": "StatefulSet", "namespace": "llm", "name": "deepseek"},
    "scaler": "reactive",
    "mode": "dry_run",
    "metrics": [
        {"name": "gpu_utilization", "target": 70, "selector": {"model": "7b"}, "window": "2m"},
        {"name": "request_queue", "target": "<2.5", "aggregation": "sum"},
    ],
    "combine": "max",
    "tolerance": 0.05,
    "min_replicas": 0,
    "max_replicas": 12,
    "capacity": {"request_rate": "30/min", "utilization": "85%"},
    "cold_start": "45s",
    "forecast": {"buffer": "5m", "quantile": 0.95, "max_age": "1h"},
    "timezone": "Europe/Paris",
    "schedule": [{"time": "30 8 * * 1-5", "min_replicas": 3, "max_replicas": 8, "duration": "10h"}],
    "emergency": {
        "enabled": True,
        "burst_multiplier": 2.5,
        "stable_window": "90s",
        "triggers": [{"metric": "request_queue", "threshold": 50, "duration": "1m30s"}],
    },
    "behavior": {
        "scaleUp": {"stabilizationWindowSeconds": 30, "selectPolicy": "Min"},
        "scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
    },
    "fractional": {"enabled": True, "step": 0.01, "min_fraction": 0.25},
    "fallback": {"replicas": 2, "stale_after": "90s"},
    "algorithm": {"name": "seasonal"},
    "preheat": {"enabled": True, "strategy": "lazy"},
}


@pytest.mark.parametrize("defaults", [False, True], ids=["as-written", "with-defaults"])
def test_rich_spec_round_trips_through_yaml(defaults: bool) -> None:
    s = parse_spec(RICH)
    text = yaml.safe_dump(s.to_document(defaults=defaults))
    assert parse_spec(yaml.safe_load(text)) == s


def test_rich_spec_values() -> None:
    s = parse_spec(RICH)
    assert s.capacity is not None
    assert s.capacity.per_pod == pytest.approx(0.5) and s.capacity.utilization == 0.85
    assert s.cold_start == 45.0 and s.forecast.buffer == 300.0
    assert s.fallback.on_missing == "replicas" and s.fallback.replicas == 2
    assert s.schedule[0].duration == 36000.0
    assert s.behavior.scale_up.policies[0].type == "Pods"  # defaults kept where not given
    assert s.behavior.scale_down.stabilization_window_seconds == 300
    doc = s.to_document()
    assert doc["capacity"] == {"request_rate": "30/min", "utilization": "85%"}
    assert doc["target"] == {"kind": "StatefulSet", "namespace": "llm", "name": "deepseek"}
    assert doc["metrics"][1]["target"] == "<2.5" and doc["metrics"][0]["window"] == "2m"
    assert doc["emergency"]["triggers"][0]["duration"] == "1m30s"


@pytest.mark.parametrize(
    "value,per_s",
    [
        pytest.param("0.5/s", 0.5, id="per-second"),
        pytest.param("30/min", 0.5, id="per-minute, the brief's 30 queries/minute"),
        pytest.param("1800/h", 0.5, id="per-hour"),
        pytest.param(2, 2.0, id="bare number is per second"),
    ],
)
def test_capacity_forms(value: object, per_s: float) -> None:
    for cap in ({"request_rate": value}, value):
        s = parse_spec({**brief_document(), "capacity": cap})
        assert s.capacity is not None
        assert s.capacity.signal == "request_rate"
        assert s.capacity.per_pod == pytest.approx(per_s)
        assert parse_spec(s.to_document()) == s


@pytest.mark.parametrize(
    "text,seconds",
    [
        pytest.param("30s", 30.0, id="seconds"),
        pytest.param("5m", 300.0, id="minutes"),
        pytest.param("1h30m", 5400.0, id="compound"),
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("2d", 172800.0, id="days"),
        pytest.param(45, 45.0, id="bare int is seconds"),
        pytest.param("12.5", 12.5, id="numeric string is seconds"),
    ],
)
def test_parse_and_format_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "entries",
    [
        # weekdays 6, every day 2: the entries fire together on weekdays, where the higher
        # floor holds (app.policy.schedule), and the weekend keeps 2
        pytest.param(
            [{"time": "0 9 * * *", "min_replicas": 2}, {"time": "0 9 * * 1-5", "min_replicas": 6}],
            id="overlapping-times",
        ),
        # the same entry twice says one thing
        pytest.param(
            [{"time": "0 9 * * *", "min_replicas": 4}, {"time": "0 9 * * *", "min_replicas": 4}],
            id="identical-entries",
        ),
    ],
)
def test_schedule_entries_that_are_not_ambiguous_are_accepted(
    entries: list[dict[str, Any]],
) -> None:
    assert len(parse_spec({**brief_document(), "schedule": entries}).schedule) == 2


def test_the_ambiguous_entries_are_named_as_written_when_another_entry_is_wrong() -> None:
    """A faulty entry is set aside for the rules across keys: the two entries still named by
    their places in the author's list."""
    doc = {**brief_document(), "schedule": [
        {"time": "0 25 * * *", "min_replicas": 1},
        {"time": "30 8 * * *", "min_replicas": 4},
        {"time": "30 8 * * *", "min_replicas": 5},
    ]}  # fmt: skip
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    [cron, ambiguous] = info.value.issues
    assert (cron["field"], ambiguous["field"]) == ("schedule.0.time", "schedule.2.time")
    assert "schedule.1 and schedule.2 both fire at '30 8 * * *'" in str(ambiguous["message"])


@pytest.mark.parametrize(
    "target,value",
    [
        pytest.param("100%", 100.0, id="percent-at-its-ceiling"),
        pytest.param(1e12, 1e12, id="plain-at-the-bound"),  # bytes of memory fit below
        pytest.param("<1000000000000", 1e12, id="queue-at-the-bound"),
    ],
)
def test_the_largest_targets_are_accepted_and_round_trip(target: object, value: float) -> None:
    s = parse_spec(with_("metrics.1.target", target))
    assert s.metrics[1].target.value == value
    assert parse_spec(json.loads(json.dumps(s.to_document()))) == s


@pytest.mark.parametrize("written,enabled", [("true", True), ("false", False), ("yes", True),
                                             ("off", False)])  # fmt: skip
def test_yaml_booleans_are_booleans(written: str, enabled: bool) -> None:
    """YAML's own booleans (PyYAML reads YAML 1.1: yes/no, on/off too) are true or false."""
    text = BRIEF_PATH.read_text().replace("enabled: true", f"enabled: {written}")
    s = parse_spec(yaml.safe_load(text))
    assert (s.preheat.enabled, s.emergency.enabled) == (enabled, enabled)


def test_the_documented_text_forms_still_parse_beside_strict_numbers() -> None:
    """Text is how the spec reference writes durations ('30s', or seconds as text in the
    durations' grammar), targets ('85%', '<5'), rates ('30/min') and percentages ('80%'):
    strict numbers leave them alone; an integer is a number wherever a number belongs."""
    doc = with_("emergency.triggers.0.duration", "45")
    doc["cold_start"] = "1m30s"
    doc["reactive"] = {"window": "2m", "drain": "30s", "panic": 3}
    doc["capacity"] = {"request_rate": "30/min", "utilization": "80%"}
    doc["metrics"][0]["target"] = "85%"
    doc["metrics"][1]["target"] = "<5"
    doc["emergency"]["triggers"][0]["threshold"] = 50
    doc["tolerance"] = 0
    s = parse_spec(doc)
    assert s.emergency.triggers[0].duration == 45.0 and s.cold_start == 90.0
    assert (s.reactive.window, s.reactive.drain, s.reactive.panic) == (120.0, 30.0, 3.0)
    assert (s.capacity.per_pod, s.capacity.utilization) == (0.5, 0.8)
    assert [m.target.form for m in s.metrics] == ["percent", "below"]
    assert s.emergency.triggers[0].threshold == 50.0 and s.tolerance == 0.0


def test_a_zero_threshold_bursts_while_anything_waits() -> None:
    """0 is a threshold (a trigger is over while its reading is above it: any request
    waiting), unlike a negative one, which every reading exceeds."""
    s = parse_spec(with_("emergency.triggers.0.threshold", 0))
    assert s.emergency.triggers[0].threshold == 0.0


def test_an_unknown_algorithm_is_refused_with_the_known_ones() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(with_("algorithm.name", "tft_tiny"))
    assert "seasonal" in caught.value.issues[0]["message"]


def test_weights_default_to_equal_shares() -> None:
    doc = with_("metrics.0.weight", DELETE)
    del doc["metrics"][1]["weight"]
    assert parse_spec(doc).weights == {"gpu_utilization": 0.5, "request_queue": 0.5}


# ---------------------------------------------------------------------------------------------
# bad specs: each names the field, the rule, and says what is wrong

BAD: list[Any] = [
    # an unknown top-level key (typo of `scaler`)
    pytest.param(
        with_("scalr", "x"), "scalr", "extra_forbidden", "did you mean 'scaler'?", id="unknown-key"
    ),
    # an unknown key inside a list item
    pytest.param(
        with_("metrics.0.wieght", 1),
        "metrics.0.wieght",
        "extra_forbidden",
        "unknown key 'wieght'; did you mean 'weight'?",
        id="unknown-nested-key",
    ),
    # a count given as text
    pytest.param(
        with_("min_replicas", "three"), "min_replicas", "int_type", "valid integer", id="wrong-type"
    ),
    # a boolean is not a count
    pytest.param(
        with_("max_replicas", True), "max_replicas", "int_type", "valid integer", id="bool-as-count"
    ),
    # issue: a boolean is true or false, not text that looks like one (JSON "yes")
    pytest.param(
        with_("emergency.enabled", "yes"),
        "emergency.enabled",
        "bool_type",
        "valid boolean",
        id="text-as-bool",
    ),
    pytest.param(
        with_("preheat.enabled", "false"),
        "preheat.enabled",
        "bool_type",
        "valid boolean",
        id="false-as-text",
    ),
    pytest.param(
        with_("fractional.enabled", 1), "fractional.enabled", "bool_type", "valid boolean", id="one"
    ),
    # issue: a number is a number, not text that looks like one (JSON "5", YAML's quoted '5'),
    # as booleans are: each was coerced before. Counts were strict already.
    pytest.param(
        with_("max_replicas", "5"), "max_replicas", "int_type", "valid integer", id="count-as-text"
    ),
    pytest.param(
        with_("tolerance", "0.2"),
        "tolerance",
        "float_type",
        "not text: write 0.2 without quotes",
        id="number-as-text",
    ),
    pytest.param(
        with_("metrics.0.weight", "0.6"),
        "metrics.0.weight",
        "float_type",
        "not text",
        id="weight-as-text",
    ),
    pytest.param(
        with_("emergency.triggers.0.threshold", "50"),
        "emergency.triggers.0.threshold",
        "float_type",
        "write 50 without quotes",
        id="threshold-as-text",
    ),
    pytest.param(
        with_("emergency.burst_multiplier", "3"),
        "emergency.burst_multiplier",
        "float_type",
        "not text",
        id="multiplier-as-text",
    ),
    pytest.param(
        with_("forecast.quantile", "0.9"), "forecast.quantile", "float_type", "not text", id="q"
    ),
    pytest.param(with_("reactive.panic", "3"), "reactive.panic", "float_type", "not text", id="p"),
    pytest.param(
        with_("fractional.step", "0.1"), "fractional.step", "float_type", "not text", id="step"
    ),
    pytest.param(
        with_("fractional.min_fraction", True),
        "fractional.min_fraction",
        "float_type",
        "not a boolean",
        id="bool-as-number",
    ),
    pytest.param(
        with_("capacity", {"request_rate": "0.5/s", "utilization": "0.8"}),
        "capacity.utilization",
        "float_type",
        "not text",
        id="utilization-as-text",
    ),
    # text is a target's way to say '85%' or '<5'; a plain one is a number
    pytest.param(
        with_("metrics.1.target", "5"),
        "metrics.1.target",
        "target",
        "'5' is text: a plain target is a number (write 5 without quotes), or write '5%' or '<5'",
        id="target-as-text",
    ),
    # text is a rate's way to give its unit ('0.5/s'); without one it is a number
    pytest.param(
        with_("capacity", {"request_rate": "0.5"}),
        "capacity.request_rate",
        "rate",
        "'0.5' is text without a unit",
        id="rate-as-text",
    ),
    # YAML 1.1 reads 1e3 (no dot, no signed exponent) as text: the message says what to write
    pytest.param(
        yaml.safe_load(BRIEF_PATH.read_text() + "tolerance: 1e-1\n"),
        "tolerance",
        "float_type",
        "write 0.1 (YAML reads an exponent such as 1e3 as text",
        id="yaml-exponent",
    ),
    # weights cannot be negative
    pytest.param(
        with_("metrics.0.weight", -0.6),
        "metrics.0.weight",
        "greater_than_equal",
        "greater than or equal to 0",
        id="negative-weight",
    ),
    # 0.6 + 0.3 is not a weighting
    pytest.param(
        with_("metrics.1.weight", 0.3), "metrics", "weights", "must sum to 1", id="weights-sum"
    ),
    # a weight on one metric but not the other
    pytest.param(
        with_("metrics.1.weight", DELETE),
        "metrics.1.weight",
        "weights",
        "every metric a weight, or none",
        id="weights-partial",
    ),
    # hour 25 does not exist: the message names the field and its range
    pytest.param(
        with_("schedule.0.time", "0 25 * * *"),
        "schedule.0.time",
        "cron",
        "hour 25 is out of range 0-23",
        id="bad-cron",
    ),
    # every field is valid alone, but no date has them together: the floor would never apply
    pytest.param(
        with_("schedule.0.time", "0 9 31 2 *"),
        "schedule.0.time",
        "cron",
        "never fires",
        id="cron-never-fires",
    ),
    # a word where a month belongs
    pytest.param(
        with_("schedule.0.time", "0 9 * foo *"),
        "schedule.0.time",
        "cron",
        "month 'foo' is not valid",
        id="cron-bad-month",
    ),
    # six fields (seconds) are not accepted
    pytest.param(
        with_("schedule.1.time", "0 0 23 * * *"),
        "schedule.1.time",
        "cron",
        "has 5 fields (minute hour day-of-month month day-of-week), this one has 6",
        id="cron-six-fields",
    ),
    # not an IANA zone
    pytest.param(
        with_("timezone", "Mars/Olympus_Mons"),
        "timezone",
        "timezone",
        "unknown time zone",
        id="bad-timezone",
    ),
    # min above max
    pytest.param(
        {**with_("min_replicas", 5), "max_replicas": 2},
        "max_replicas",
        "min_gt_max",
        "must be >= min_replicas (5)",
        id="min-gt-max",
    ),
    # unit x does not exist
    pytest.param(
        with_("emergency.triggers.0.duration", "30x"),
        "emergency.triggers.0.duration",
        "duration",
        "'30x' is not a duration",
        id="bad-duration",
    ),
    # negative durations make no sense
    pytest.param(
        with_("emergency.stable_window", -5),
        "emergency.stable_window",
        "duration",
        ">= 0",
        id="negative-duration",
    ),
    # a utilisation above 100 %
    pytest.param(
        with_("metrics.0.target", "185%"),
        "metrics.0.target",
        "percent",
        "(0%, 100%]",
        id="bad-percent",
    ),
    # a zero queue target would divide by zero
    pytest.param(
        with_("metrics.1.target", "<0"), "metrics.1.target", "target", "> 0", id="zero-target"
    ),
    # issue: a target past any per-pod reading; 1e308 x the pods overflows a float
    pytest.param(
        with_("metrics.1.target", 1e308),
        "metrics.1.target",
        "target",
        "at most 1e+12 per pod",
        id="huge-target",
    ),
    pytest.param(
        with_("metrics.1.target", "<1e13"),
        "metrics.1.target",
        "target",
        "at most 1e+12 per pod",
        id="huge-queue-target",
    ),
    # only '<N' is a below-target
    pytest.param(
        with_("metrics.1.target", "<=5"),
        "metrics.1.target",
        "target",
        "use '85%', '<5'",
        id="lte-target",
    ),
    # not a model we know
    pytest.param(
        with_("algorithm.name", "lstm"),
        "algorithm.name",
        "algorithm",
        "unknown algorithm 'lstm'",
        id="unknown-algorithm",
    ),
    # median is not an aggregation we offer
    pytest.param(
        with_("metrics.0.aggregation", "median"),
        "metrics.0.aggregation",
        "literal_error",
        "'avg', 'sum', 'max' or 'min'",
        id="unknown-aggregation",
    ),
    # combine is weighted or max
    pytest.param(
        with_("combine", "sum"),
        "combine",
        "literal_error",
        "'weighted' or 'max'",
        id="unknown-combine",
    ),
    # preheat strategies are eager or lazy
    pytest.param(
        with_("preheat.strategy", "lukewarm"),
        "preheat.strategy",
        "literal_error",
        "'eager' or 'lazy'",
        id="unknown-strategy",
    ),
    # a floor above the ceiling can never hold
    pytest.param(
        with_("schedule.0.min_replicas", 40),
        "schedule.0.min_replicas",
        "above_max",
        "exceeds the scaler's max_replicas (10)",
        id="schedule-above-max",
    ),
    # issue: more spare pods than the scaler may ever run, as a schedule floor above max
    pytest.param(
        {**with_("preheat.min_ready", 500), "max_replicas": 3, "schedule": []},
        "preheat.min_ready",
        "above_max",
        "min_ready (500) exceeds the scaler's max_replicas (3)",
        id="preheat-above-max",
    ),
    # a cap above the ceiling never binds: a user raising the ceiling at peak hours this way
    # would be silently capped at max_replicas all the same
    pytest.param(
        with_("schedule.0.max_replicas", 40),
        "schedule.0.max_replicas",
        "above_max",
        "a schedule cap only lowers the ceiling",
        id="schedule-cap-above-max",
    ),
    # an entry's own max below its min
    pytest.param(
        with_("schedule.0.max_replicas", 2),
        "schedule.0.max_replicas",
        "min_gt_max",
        "below min_replicas (4)",
        id="schedule-min-gt-max",
    ),
    # a cap below the scaler's own floor
    pytest.param(
        {**with_("schedule.1.max_replicas", 2), "min_replicas": 3},
        "schedule.1.max_replicas",
        "below_min",
        "below the scaler's min_replicas (3)",
        id="schedule-cap-below-min",
    ),
    # issue: two entries firing at the same times with different floors: which one holds?
    pytest.param(
        {
            **brief_document(),
            "schedule": [
                {"time": "0 9 * * *", "min_replicas": 4},
                {"time": "0 23 * * *", "min_replicas": 2},
                {"time": "0 9 * * *", "min_replicas": 3},
            ],
        },
        "schedule.2.time",
        "ambiguous",
        "schedule.0 and schedule.2 both fire at '0 9 * * *' with different bounds "
        "(min_replicas 4 and 3)",
        id="schedule-same-time-two-floors",
    ),
    # the same times written another way are the same entry
    pytest.param(
        {
            **brief_document(),
            "schedule": [
                {"time": "0 9 * * 1-5", "min_replicas": 4},
                {"time": "00 09 * * mon-fri", "min_replicas": 6},
            ],
        },
        "schedule.1.time",
        "ambiguous",
        "both fire at",
        id="schedule-same-time-written-differently",
    ),
    # a trigger on a metric the scaler does not collect
    pytest.param(
        with_("emergency.triggers.0.metric", "queue_len"),
        "emergency.triggers.0.metric",
        "unknown_metric",
        "not one of the spec's metrics",
        id="trigger-unknown-metric",
    ),
    # a trigger reads its metric avg, sum, max or min over pods
    pytest.param(
        with_("emergency.triggers.0.aggregation", "median"),
        "emergency.triggers.0.aggregation",
        "literal_error",
        "'avg', 'sum', 'max' or 'min'",
        id="bad-trigger-aggregation",
    ),
    # issue: a negative threshold is always exceeded: a burst that never ends
    pytest.param(
        with_("emergency.triggers.0.threshold", -5),
        "emergency.triggers.0.threshold",
        "threshold",
        "threshold must be >= 0, got -5",
        id="negative-trigger-threshold",
    ),
    # enabled with nothing to trigger it
    pytest.param(
        with_("emergency.triggers", []),
        "emergency.triggers",
        "required",
        "at least one trigger",
        id="emergency-no-triggers",
    ),
    # multiplying by 1 is no burst
    pytest.param(
        with_("emergency.burst_multiplier", 1.0),
        "emergency.burst_multiplier",
        "greater_than",
        "greater than 1",
        id="burst-multiplier-one",
    ),
    # HPA caps periodSeconds at 1800
    pytest.param(
        with_(
            "behavior",
            {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 3600}]}},
        ),
        "behavior.scaleDown.policies.0.periodSeconds",
        "less_than_equal",
        "1800",
        id="period-too-long",
    ),
    # HPA caps stabilisation windows at 3600
    pytest.param(
        with_("behavior", {"scaleUp": {"stabilizationWindowSeconds": 4000}}),
        "behavior.scaleUp.stabilizationWindowSeconds",
        "less_than_equal",
        "3600",
        id="window-too-long",
    ),
    # policy types are Pods or Percent
    pytest.param(
        with_(
            "behavior",
            {"scaleUp": {"policies": [{"type": "Replicas", "value": 1, "periodSeconds": 15}]}},
        ),
        "behavior.scaleUp.policies.0.type",
        "literal_error",
        "'Pods' or 'Percent'",
        id="bad-policy-type",
    ),
    # an explicit empty policy list (omit it for the defaults)
    pytest.param(
        with_("behavior", {"scaleDown": {"policies": []}}),
        "behavior.scaleDown.policies",
        "policies",
        "at least one policy",
        id="empty-policies",
    ),
    # selectPolicy spelled wrong
    pytest.param(
        with_("behavior", {"scaleUp": {"selectPolicy": "Maximum"}}),
        "behavior.scaleUp.selectPolicy",
        "literal_error",
        "'Max', 'Min' or 'Disabled'",
        id="bad-select-policy",
    ),
    # fractional steps are tenths or hundredths
    pytest.param(
        with_("fractional", {"enabled": True, "step": 0.5}),
        "fractional.step",
        "step",
        "0.1 or 0.01",
        id="bad-step",
    ),
    # a rate needs a known unit
    pytest.param(
        with_("capacity", {"request_rate": "3/fortnight"}),
        "capacity.request_rate",
        "rate",
        "not a rate",
        id="bad-rate",
    ),
    # fallback to a count needs the count
    pytest.param(
        with_("fallback", {"on_missing": "replicas"}),
        "fallback.replicas",
        "required",
        "replicas is required",
        id="fallback-without-replicas",
    ),
    # names are DNS labels, as Kubernetes wants
    pytest.param(
        with_("target", "DeepSeek_Service"),
        "target.name",
        "string_pattern_mismatch",
        "should match pattern",
        id="bad-target-name",
    ),
    # the target is the one key without a default
    pytest.param(
        with_("target", DELETE), "target", "missing", "required key is missing", id="missing-target"
    ),
    # no metrics, nothing to scale on
    pytest.param(with_("metrics", []), "metrics", "too_short", "at least 1 item", id="no-metrics"),
    # cold_start is seconds or learn
    pytest.param(
        with_("cold_start", "soon"), "cold_start", "duration", "not a duration", id="bad-cold-start"
    ),
    # the same metric twice
    pytest.param(
        with_("metrics.1.name", "gpu_utilization"),
        "metrics.1.name",
        "duplicate",
        "listed twice",
        id="duplicate-metric",
    ),
    # a tolerance of 150 % would never scale
    pytest.param(
        with_("tolerance", 1.5), "tolerance", "less_than", "less than 1", id="tolerance-too-big"
    ),
    # a quantile below the median is no headroom
    pytest.param(
        with_("forecast", {"quantile": 0.3}),
        "forecast.quantile",
        "greater_than_equal",
        "0.5",
        id="quantile-too-low",
    ),
    # mode is apply or dry_run
    pytest.param(
        with_("mode", "preview"), "mode", "literal_error", "'apply' or 'dry_run'", id="bad-mode"
    ),
]


@pytest.mark.parametrize("document,field,rule,message", BAD)
def test_bad_specs_name_the_field_and_the_rule(
    document: dict[str, Any], field: str, rule: str, message: str
) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(document)
    issues = info.value.issues
    matching = [i for i in issues if i["field"] == field]
    assert matching, f"no issue at {field!r}: {issues}"
    issue = matching[0]
    assert issue["rule"] == rule, issue
    assert message in str(issue["message"]), issue
    assert "value" in issue
    assert field in str(info.value)


def test_bad_spec_issue_carries_the_offending_value() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(with_("metrics.0.target", "185%"))
    assert info.value.issues == [
        {
            "field": "metrics.0.target",
            "value": "185%",
            "rule": "percent",
            "message": "a percentage must be in (0%, 100%], got '185%'",
        }
    ]


def test_several_problems_are_reported_together() -> None:
    doc = with_("timezone", "Nowhere/Else")
    doc["metrics"][0]["target"] = "185%"
    doc["bogus"] = 1
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert {i["field"] for i in info.value.issues} == {"timezone", "metrics.0.target", "bogus"}


def test_a_bad_cron_does_not_hide_the_rules_across_keys() -> None:
    """Issue 14: a spec with a wrong cron and min_replicas above max_replicas reported only the
    cron; an author fixing it then met the second error on the next try."""
    doc = with_("schedule.0.time", "0 25 * * *")
    doc.update(min_replicas=12, max_replicas=10)
    doc["schedule"][1]["min_replicas"] = 11  # second entry: above the scaler's max
    doc["schedule"][0]["max_replicas"] = 2  # first entry: its own cap below its floor
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert [(i["field"], i["rule"]) for i in info.value.issues] == [
        ("schedule.0.time", "cron"),
        ("schedule.0.max_replicas", "min_gt_max"),
        ("max_replicas", "min_gt_max"),
        ("schedule.1.min_replicas", "above_max"),
    ]


def test_preheat_above_max_is_reported_beside_a_schedule_above_max() -> None:
    doc = {**with_("preheat.min_ready", 500), "max_replicas": 3}  # schedule.0 asks for 4
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert [(i["field"], i["rule"]) for i in info.value.issues] == [
        ("schedule.0.min_replicas", "above_max"),
        ("preheat.min_ready", "above_max"),
    ]


def test_rules_across_keys_are_not_judged_on_a_key_that_failed() -> None:
    """max_replicas is not a number: its default (10) must not make the schedule "exceed" it."""
    doc = with_("max_replicas", "lots")
    doc["schedule"][0]["min_replicas"] = 40
    with pytest.raises(SpecError) as info:
        parse_spec(doc)
    assert [(i["field"], i["rule"]) for i in info.value.issues] == [("max_replicas", "int_type")]


def test_a_missing_key_has_no_value() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(with_("target", DELETE))
    assert info.value.issues == [
        {"field": "target", "value": None, "rule": "missing", "message": "required key is missing"}
    ]


def test_a_document_that_is_not_a_mapping() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(["target", "x"])  # type: ignore[arg-type]
    assert info.value.issues[0]["field"] == "(root)"


def test_spec_is_immutable() -> None:
    s: ScalerSpec = parse_spec(brief_document())
    with pytest.raises(Exception, match="frozen"):
        s.min_replicas = 3  # type: ignore[misc]


def test_json_schema_describes_the_written_forms() -> None:
    """The API's OpenAPI shows what authors write ("85%", "30s"), not the parsed models."""
    schema = ScalerSpec.model_json_schema()
    target = schema["$defs"]["MetricSpec"]["properties"]["target"]
    assert "85%" in target["examples"]
    window = schema["$defs"]["MetricSpec"]["properties"]["window"]
    assert {"type": "string"}.items() <= window["anyOf"][1].items()
    assert schema["properties"]["target"]["anyOf"][0]["type"] == "string"
    assert ScalerSpec.model_json_schema(mode="serialization")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["85%", "<5", "30s", "0.5/s", "learn", "0 9 * * *", "Max", "Pods"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_mutation_is_a_spec_or_a_spec_error(data: st.DataObject) -> None:
    """Whatever the author writes, parse_spec answers with a spec or a SpecError naming a
    field, never another exception (the API must never answer 500 to bad input)."""
    doc = copy.deepcopy({**brief_document(), **RICH})
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        node: Any = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = data.draw(json_values)
    try:
        parse_spec(doc)
    except SpecError as err:
        assert err.issues
        assert all(isinstance(i["field"], str) and i["message"] for i in err.issues)

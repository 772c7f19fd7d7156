"""The scaler spec: what an operator writes (YAML or JSON) to say how a deployment scales.

`parse_spec` accepts `examples/ciuic-config.yaml` verbatim (after `yaml.safe_load`) and fills
every omitted key with a default; `ScalerSpec.to_document` renders it back in the same shape
("85%", "<5", "30s", "0.5/s"), so YAML in -> YAML out keeps the meaning.

Units, once, so nobody has to guess:
- durations are seconds: a number, or a string such as "30s", "5m", "1h30m", "250ms";
- a metric `target` is compared with the metric as pushed: "85%" is 85 (percent points, like
  NVML's 0..100 GPU utilisation), "<5" and 5 are 5 (per pod, after aggregation);
- `capacity` is what one pod serves of the load signal, in units per second ("30/min" == 0.5).

Errors: `SpecError.issues` lists every problem as {field, value, rule, message}; `field` is a
dotted path into the document ("metrics.1.target"), `rule` a stable code.
"""

from __future__ import annotations

from app.policy.spec.algorithms import KNOWN_ALGORITHMS
from app.policy.spec.errors import SpecError, SpecIssue
from app.policy.spec.objective import ObjectiveSpec
from app.policy.spec.parts import (
    AlgorithmSpec,
    CapacitySpec,
    EmergencySpec,
    EmergencyTrigger,
    FallbackSpec,
    ForecastSpec,
    FractionalSpec,
    MetricSource,
    MetricSpec,
    MetricTarget,
    PreheatSpec,
    ReactiveSpec,
    ScheduleEntry,
    TargetRef,
)
from app.policy.spec.rules import (
    RESPONSIVE_BEHAVIOR,
    BehaviorSpec,
    ScaleDownRules,
    ScaleUpRules,
    ScalingPolicy,
)
from app.policy.spec.scaler import ScalerSpec, parse_spec
from app.policy.spec.units import (
    DEFAULT_COLD_START_S,
    Aggregation,
    format_duration,
    parse_duration,
)

__all__ = [
    "DEFAULT_COLD_START_S",
    "KNOWN_ALGORITHMS",
    "RESPONSIVE_BEHAVIOR",
    "Aggregation",
    "AlgorithmSpec",
    "BehaviorSpec",
    "CapacitySpec",
    "EmergencySpec",
    "EmergencyTrigger",
    "FallbackSpec",
    "ForecastSpec",
    "FractionalSpec",
    "MetricSource",
    "MetricSpec",
    "MetricTarget",
    "ObjectiveSpec",
    "PreheatSpec",
    "ReactiveSpec",
    "ScaleDownRules",
    "ScaleUpRules",
    "ScalerSpec",
    "ScalingPolicy",
    "ScheduleEntry",
    "SpecError",
    "SpecIssue",
    "TargetRef",
    "format_duration",
    "parse_duration",
    "parse_spec",
]

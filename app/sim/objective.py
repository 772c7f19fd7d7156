"""`ciuic-slo`: the benchmark's ciuic spec with the scenario's latency objective stated
(`objective: {ttft_p95: <scenario.ttft_objective_s>, concurrency: <slots per pod>}`, the
slots being what an operator configures, e.g. vLLM's max_num_seqs), so the report shows what
sizing for it costs and attains beside the default spec. Prefill is left to the policy's
measured value, which the simulated pods do not push: the queue wait is sized for the whole
objective.
"""

from __future__ import annotations

from typing import Any

from app.sim.runner import Prior

__all__ = ["with_objective"]


def with_objective(prior: Prior) -> dict[str, Any]:
    from app.sim.ciuic import default_spec  # the adapter imports this package's runner

    spec = default_spec(prior.scenario)
    spec["objective"] = {
        "ttft_p95": prior.scenario.ttft_objective_s,
        "concurrency": prior.scenario.slots_per_pod,  # vLLM's max_num_seqs: configuration
    }
    return spec

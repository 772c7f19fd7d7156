"""`objective`: the latency a scaler sizes for, as clients see it (see `app.policy.objective`).

    objective: {ttft_p95: 2s}                     # time to first token, queue wait included
    objective: {queue_wait_p95: 500ms}            # the wait before a request starts
    objective: {ttft_p95: 2s, prefill: 300ms, itl_p95: 50ms, concurrency: 8}

`prefill` is the p95 prefill time of the prompts (what the engine spends before the first token
once a request runs); the part of `ttft_p95` left for the queue is `ttft_p95 - prefill`. Left
out, the measured one is used where pods push it, else 0. `concurrency` is how many requests a
pod runs at once (the queueing model's servers per pod; 1, the default, over-states the wait).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from app.policy.spec.errors import _fail
from app.policy.spec.units import Count, Duration, _Model

__all__ = ["MAX_OBJECTIVE_S", "ObjectiveSpec"]

MAX_OBJECTIVE_S = 600.0
"""A latency objective above 10 minutes is a typo (a client gave up long before)."""


class ObjectiveSpec(_Model):
    """p95 latency objectives; at least one of `ttft_p95`, `queue_wait_p95`, `itl_p95`."""

    ttft_p95: Duration | None = None
    queue_wait_p95: Duration | None = None
    itl_p95: Duration | None = None
    prefill: Duration | None = None
    # Requests one pod runs at once (vLLM's max_num_seqs, a batch's slots): the queueing
    # model's servers per pod. 1 (the default) pools them into one server: an upper bound.
    concurrency: Count = Field(default=1, ge=1, le=1024)

    @field_validator("ttft_p95", "queue_wait_p95", "itl_p95")
    @classmethod
    def _plausible(cls, value: float | None) -> float | None:
        if value is None:
            return value
        if value <= 0:
            raise _fail("duration", "a latency objective must be > 0, e.g. '2s' or '500ms'")
        if value > MAX_OBJECTIVE_S:
            raise _fail(
                "duration",
                f"a latency objective above {MAX_OBJECTIVE_S:g}s is not plausible, got {value:g}s",
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ObjectiveSpec:
        if self.ttft_p95 is None and self.queue_wait_p95 is None and self.itl_p95 is None:
            raise _fail(
                "required",
                "an objective names at least one of ttft_p95, queue_wait_p95, itl_p95 "
                "(e.g. {ttft_p95: 2s})",
                value=None,
            )
        if self.prefill is not None and self.ttft_p95 is None:
            raise _fail(
                "prefill_without_ttft",
                "prefill only counts against ttft_p95: give ttft_p95 too, or drop prefill",
                sub="prefill",
                value=self.prefill,
            )
        if self.prefill is not None and self.ttft_p95 is not None and self.prefill >= self.ttft_p95:
            raise _fail(
                "prefill_over_objective",
                f"prefill ({self.prefill:g}s) leaves no time to queue within ttft_p95 "
                f"({self.ttft_p95:g}s): no replica count meets it",
                sub="prefill",
                value=self.prefill,
            )
        return self

    def wait_budget_s(self, measured_prefill_s: float | None = None) -> float | None:
        """The p95 queue wait the objectives leave (None: no TTFT or wait objective): the
        tighter of `queue_wait_p95` and `ttft_p95` less the prefill (the spec's, else the
        measured one, else 0). At least 0: a prefill over the objective leaves no wait."""
        budgets = []
        if self.queue_wait_p95 is not None:
            budgets.append(self.queue_wait_p95)
        if self.ttft_p95 is not None:
            prefill = self.prefill if self.prefill is not None else measured_prefill_s
            budgets.append(max(0.0, self.ttft_p95 - (prefill or 0.0)))
        return min(budgets) if budgets else None

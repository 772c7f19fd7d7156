"""The Grafana JSON datasource API (simPod `simpod-json-datasource`) under `/grafana`.

Point a datasource of that type at `http://<ciuic>/grafana` with a `read` token (basic auth
with the token as the password, or a Bearer header). Endpoints, relative to that URL:

    GET  /                         health (also `/grafana/`: Grafana calls the bare URL)
    POST /metrics                  what can be queried, with payload options
    POST /metric-payload-options   the options of one payload
    POST /query                    time series, tables, and annotations (refId "Anno")
    POST /variable                 dashboard variables: [{"__text", "__value"}]
    POST /tag-keys, /tag-values    ad-hoc filters
    POST /search, /annotations     the older simple-json API

Targets:

- a series selector, `gpu_utilization{deployment="deepseek"}`, with payload `agg` (how a step's
  samples reduce: avg, sum, min, max, count), `combine` (across series: none, sum, avg, max,
  min), `legend` (`{{pod}}` templates) and `format` (time_series or table);
- `scaler:<name>:desired_replicas`, `:need`, `:current_replicas`, `:ready`: step functions from
  the scaler's recorded action/dry-run events and its latest decision;
- `scaler:<name>:decision`: the latest decision's reasons as a table;
- `forecast:<name>:<band>`: the latest fitted forecast's mean, p50, p90, p99 and the replicas
  it plans, ahead of now (set the dashboard's range past `now` to see them).

Ad-hoc filters (`filters`, or `adhocFilters` from older plugin versions) are label matchers added
to every selector; a filter on the key `scaler` also narrows scaler series and annotations.
"""

from __future__ import annotations

from app.api.grafana.forecast_series import FORECAST_BANDS, forecast_metric_names, forecast_series
from app.api.grafana.inputs import choose_step_ms
from app.api.grafana.routes import router
from app.api.grafana.scaler_series import step_function

__all__ = [
    "FORECAST_BANDS",
    "choose_step_ms",
    "forecast_metric_names",
    "forecast_series",
    "router",
    "step_function",
]

"""The grouping key carried in a push URL: `/metrics/job/<job>{/<label>/<value>}`.

Follows the Pushgateway: `<name>@base64/<value>` carries URL-safe base64 with or without
padding, and a lone `=` is the empty string (the only way to send an empty value).
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote_plus

from app.errors import BadRequest

__all__ = ["LABEL_NAME", "parse_grouping_key"]

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _decode_b64(name: str, raw: str) -> str:
    if raw == "=":
        return ""
    padded = raw + "=" * (-len(raw) % 4)
    try:
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode(
            "utf-8"
        )
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise BadRequest(
            f"invalid base64 encoding in label value for {name!r}: {raw!r}",
            code="invalid_grouping_key",
        ) from exc


def parse_grouping_key(path: str) -> dict[str, str]:
    """`path` is everything after `/metrics/`, raw (still percent-encoded), e.g.
    `job/deepseek-monitor/pod@base64/ZGVlcC9zZWVr`. Returns the labels, job first."""
    parts = path.split("/")
    if parts and parts[-1] == "":
        parts = parts[:-1]  # a trailing slash adds no label
    if len(parts) < 2 or parts[0] not in ("job", "job@base64"):
        raise BadRequest(
            "the push path must start with /metrics/job/<job>", code="invalid_grouping_key"
        )
    if len(parts) % 2:
        raise BadRequest(
            "odd number of path segments after /metrics/: every label needs a value",
            code="invalid_grouping_key",
        )
    labels: dict[str, str] = {}
    for i in range(0, len(parts), 2):
        raw_name, raw_value = unquote_plus(parts[i]), parts[i + 1]
        if raw_name.endswith("@base64"):
            name = raw_name[: -len("@base64")]
            value = _decode_b64(name, unquote_plus(raw_value))
        else:
            name, value = raw_name, unquote_plus(raw_value)
        if not LABEL_NAME.match(name) or name.startswith("__"):
            raise BadRequest(f"improper label name {name!r}", code="invalid_grouping_key")
        if name in labels:
            raise BadRequest(
                f"label {name!r} appears twice in the grouping key", code="invalid_grouping_key"
            )
        labels[name] = value
    if not labels["job"]:
        raise BadRequest("job name is required", code="invalid_grouping_key")
    return labels

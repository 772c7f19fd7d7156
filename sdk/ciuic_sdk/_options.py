"""What the SDK's command lines (ciuic-agent, ciuic-hold) parse alike."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["parse_labels"]


def parse_labels(values: Sequence[str]) -> dict[str, str]:
    """`--label name=value` options (repeatable) as labels; argparse's error when one is not."""
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--label wants name=value, got {item!r}")
        out[name] = value
    return out

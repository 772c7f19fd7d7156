"""Kubernetes resource quantities, and the share of a pod template a partial pod gets.

Only CPU and memory are shared out (requests and limits alike); every other resource, a GPU
above all, is left as the template has it: a GPU cannot be resized in place.
"""

from __future__ import annotations

import copy
import math
import re
from decimal import Decimal
from typing import Any

__all__ = ["full_resources", "parse_quantity", "partial_resources", "scale_quantity"]

_SUFFIX = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
SHARED = ("cpu", "memory")


def parse_quantity(value: str | int | float) -> Decimal:
    """`"1500m"` -> 1.5, `"16Gi"` -> 17179869184; ValueError on anything else."""
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ValueError(f"{value!r} is not a Kubernetes quantity")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2) or ""]


def scale_quantity(resource: str, value: str | int | float, fraction: float) -> str:
    """A share of a quantity, rounded up: millicores for CPU, whole bytes for memory."""
    amount = parse_quantity(value) * Decimal(str(fraction))
    if resource == "cpu":
        return f"{max(1, math.ceil(amount * 1000))}m"
    return str(max(1, math.ceil(amount)))


def _containers(template: dict[str, Any], fraction: float | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for container in template.get("spec", {}).get("containers", []) or []:
        resources = container.get("resources") or {}
        patch: dict[str, dict[str, str]] = {}
        for section in ("requests", "limits"):
            values = resources.get(section) or {}
            shared = {
                r: (str(v) if fraction is None else scale_quantity(r, v, fraction))
                for r, v in values.items()
                if r in SHARED
            }
            if shared:
                patch[section] = shared
        if patch:
            out.append({"name": container["name"], "resources": copy.deepcopy(patch)})
    return out


def partial_resources(template: dict[str, Any], fraction: float) -> list[dict[str, Any]]:
    """The containers patch giving a pod `fraction` of the template's CPU and memory."""
    return _containers(template, fraction)


def full_resources(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The containers patch putting a resized pod back to the template's CPU and memory."""
    return _containers(template, None)

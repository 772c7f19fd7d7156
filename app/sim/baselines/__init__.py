"""Peer autoscalers, each as its system documents it, and the two clairvoyant references
(the oracle on arrivals, the fluid floor on the true rate)."""

from __future__ import annotations

from app.sim.baselines.fluid import Fluid
from app.sim.baselines.hpa import HPA
from app.sim.baselines.keda import KEDA
from app.sim.baselines.kpa import KPA
from app.sim.baselines.oracle import Oracle

__all__ = ["HPA", "KEDA", "KPA", "Fluid", "Oracle"]

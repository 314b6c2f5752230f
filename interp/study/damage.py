"""Damage beyond the first-token KL, measured for any edit: multi-token KL along the base model's own
continuations of harmless prompts, and the capability probe before and after. The unedited side of both is
computed once and shared by every edit the study measures."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from interp.behaviour.capability import (
    CapabilityItem,
    CapabilityScore,
    capability_accuracy,
    capability_subset,
    load_capability,
)
from interp.core.errors import InterpError
from interp.core.generation import complete
from interp.core.measure import Intervention, continuation_kl
from interp.core.model import Model
from interp.study.damage_records import Damage

__all__ = ["DamageProbe", "capability_items"]


def capability_items(n: int) -> tuple[CapabilityItem, ...]:
    """`n` items of the built-in capability probe, balanced over language and category (0: none)."""
    if n < 0:
        raise InterpError(f"the number of capability items must be at least 0, got {n}")
    return capability_subset(load_capability(), n) if n else ()


class DamageProbe:
    """`probe.measure(lambda: ablate(model, d))` -> Damage. Built on the unedited model: the base
    continuations and the probe's unedited score are made (lazily, once) with no edit active."""

    def __init__(self, model: Model, harmless: Sequence[str], capability: Sequence[CapabilityItem], tokens: int = 32,
                 capability_before: CapabilityScore | None = None):
        """`capability_before`: the unedited score, if already measured on these items (a resumed run)."""
        self.model, self.harmless, self.items, self.tokens = model, list(harmless), tuple(capability), tokens
        known = capability_before is not None and capability_before.n == len(self.items)
        self._known_before = capability_before if known else None

    @cached_property
    def continuations(self) -> list[str]:
        return complete(self.model, self.harmless, self.tokens, description="base continuations (harmless)")

    @cached_property
    def capability_before(self) -> CapabilityScore | None:
        if self._known_before is not None or not self.items:
            return self._known_before
        return capability_accuracy(self.model, self.items, description="capability probe, unedited")

    def measure(self, intervention: Intervention) -> Damage:
        kl = (continuation_kl(self.model, self.harmless, intervention, self.continuations, self.tokens)
              if self.harmless else None)
        before, after = self.capability_before, None
        if self.items:
            with intervention():
                after = capability_accuracy(self.model, self.items, description="capability probe, edited")
        return Damage(kl, self.tokens, len(self.harmless), before, after)

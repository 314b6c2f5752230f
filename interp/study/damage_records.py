"""The damage records of report.json (imported by `records`, which is the rest of the schema)."""

from __future__ import annotations

from dataclasses import dataclass

from interp.behaviour.capability import CapabilityScore

__all__ = ["Damage"]


@dataclass(frozen=True)
class Damage:
    """What an edit costs beyond the first-token KL: the mean KL(base || edited) per token along the base
    model's own greedy continuations of harmless prompts (teacher-forced), and the capability probe's accuracy
    before and after the edit. The third damage measure, the share of degenerate (looping) completions, is
    each set's `Rates.degenerate_rate` before and after."""

    kl_per_token: float | None  # None: no harmless prompts to continue
    tokens: int  # next-token distributions compared per prompt (fewer where a base continuation ended sooner)
    n: int  # harmless prompts
    capability_before: CapabilityScore | None = None  # None: the probe was skipped (capability_n 0)
    capability_after: CapabilityScore | None = None

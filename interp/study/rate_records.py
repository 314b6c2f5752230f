"""Verdict shares of a group of completions: the record every evaluation reports (re-exported by
interp.study.records; kept apart so that the search's records can hold them without importing the report's)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rates"]


@dataclass(frozen=True)
class Rates:
    """Shares of a group of completions by verdict (suppression = refusal + deflection; invented and
    faithful split the rest), the share that degenerated into loops, and fact recall (mean over prompts
    with countable facts)."""

    suppression_rate: float | None
    refusal_rate: float | None
    deflection_rate: float | None
    fact_recall: float | None
    n: int
    invented_rate: float | None = None
    faithful_rate: float | None = None
    degenerate_rate: float | None = None
    unfinished: int = 0  # reasoning models: completions whose thought never closed (not judged, not in n)
    unchecked_rate: float | None = None  # answers the judge could not check (no fact checklist): not in faithful

"""report.json's reasoning-model block (records as in interp.study.records, kept apart to keep that file
small): how completions used their <think> block, per set, split and language, before and after each
direction's ablation."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Thinking", "ThoughtChange", "ThoughtShares"]


@dataclass(frozen=True)
class ThoughtShares:
    """Shares of n completions: the thought closed at once (`<think>\\n\\n</think>` straight to the answer),
    never closed within the budget (no answer to judge), or never opened; and the mean probability of an
    empty thought from the next-token distribution (no generation)."""

    n: int
    empty: float | None
    unfinished: float | None
    absent: float | None
    p_empty: float | None = None


@dataclass(frozen=True)
class ThoughtChange:
    before: ThoughtShares
    after: ThoughtShares


@dataclass(frozen=True)
class Thinking:
    """mode: `opened` (the template writes `<think>`: R1 distills, QwQ), `free` (the model opens its own
    thought: Qwen3) or `closed` (the template writes an empty thought: thinking switched off, nothing
    measured); switch: the template's enable_thinking as asked (auto | on | off); think_tokens: added to
    every generation budget for the thought."""

    mode: str
    switch: str
    think_tokens: int
    labels: dict[str, dict[str, dict[str, ThoughtShares]]]  # set -> split -> language ("all" too), unedited
    ablated: dict[str, dict[str, dict[str, ThoughtChange]]]  # kind -> set -> language: test split, that kind ablated

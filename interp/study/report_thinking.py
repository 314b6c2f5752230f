"""report.md's lines on a reasoning model's thought (interp.study.thought_records): a verdict line and a
table of empty, unfinished and absent thoughts per set and split, and before and after each ablation."""

from __future__ import annotations

from interp.study.thought_records import Thinking, ThoughtShares

__all__ = ["budget_words", "thinking_lines", "thinking_section"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def budget_words(tokens: int, thinking: Thinking | None) -> str:
    """'128 new tokens', or '128 new tokens + 1024 for the thought' for a model that thinks."""
    extra = f" + {thinking.think_tokens} for the thought" if thinking and thinking.think_tokens else ""
    return f"{tokens} new tokens{extra}"


def thinking_lines(thinking: Thinking | None, kind: str, target: str, called: str = "") -> list[str]:
    """The verdict's line: does ablating `kind` bring the thought back on its `target` set (`called` so)?"""
    if thinking is None:
        return []
    if thinking.mode == "closed":
        return [f"- **thought**: thinking switched off (--thinking {thinking.switch}): the template writes an "
                "empty thought, so nothing about the thought is measured."]
    change = thinking.ablated.get(kind, {}).get(target, {}).get("all")
    if change is None:
        return []
    b, a = change.before, change.after
    unfinished = max(b.unfinished or 0, a.unfinished or 0)
    caveat = (f" {_pct(unfinished)} of completions ran out of budget inside the thought (not judged): raise "
              "think_tokens." if unfinished >= 0.1 else "")
    return [f"- **thought** (a skipped thought is R1-style suppression): ablating {kind} takes the empty-thought "
            f"share on {called or target} test prompts from {_pct(b.empty)} to {_pct(a.empty)} and P(empty thought) from "
            f"{_pct(b.p_empty)} to {_pct(a.p_empty)}.{caveat}"]


def _cells(s: ThoughtShares) -> str:
    return f"{s.n} | {_pct(s.empty)} | {_pct(s.p_empty)} | {_pct(s.unfinished)} | {_pct(s.absent)}"


def thinking_section(thinking: Thinking | None) -> list[str]:
    if thinking is None or thinking.mode == "closed":
        return []
    out = ["## Thought (reasoning model)", "",
           f"The chat template {'opens the thought itself' if thinking.mode == 'opened' else 'leaves the model to open its thought'}"
           f" (thinking switch: {thinking.switch}); every budget has {thinking.think_tokens} more tokens for it. "
           "Empty: `<think></think>` straight to the answer; unfinished: still thinking when the budget ran out "
           "(not judged, outside every rate); absent: no thought at all.", "",
           "| set | split | lang | n | empty | P(empty) | unfinished | absent |", "|---|---|---|---|---|---|---|---|"]
    for name, splits in thinking.labels.items():
        for split, by_lang in splits.items():
            out += [f"| {name} | {split} | {lang} | {_cells(s)} |" for lang, s in by_lang.items()]
    out += ["", "Before and after each ablation (test split):", "",
            "| kind | set | lang | n | empty before | after | P(empty) before | after | unfinished before | after |",
            "|---" * 10 + "|"]
    for kind, sets in thinking.ablated.items():
        for name, by_lang in sets.items():
            out += [f"| {kind} | {name} | {lang} | {c.before.n} | {_pct(c.before.empty)} | {_pct(c.after.empty)} | "
                    f"{_pct(c.before.p_empty)} | {_pct(c.after.p_empty)} | {_pct(c.before.unfinished)} | "
                    f"{_pct(c.after.unfinished)} |" for lang, c in by_lang.items()]
    return [*out, ""]

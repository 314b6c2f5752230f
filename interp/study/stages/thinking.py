"""Thinking: for a reasoning model, how its completions used the <think> block (empty, unfinished,
absent) and the probability of an empty thought, per set, split and language, and on each kind's test
prompts before and after that kind's direction is ablated. Read from the labels and per-prompt rows the
earlier stages wrote; only the ablated empty-thought probability needs the model (forward passes, no
generation)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from interp.behaviour.thinking import empty_thought_probability, thought, thought_mode
from interp.core.directions import Direction
from interp.core.interventions import ablate
from interp.core.model import Model
from interp.core.thinking_switch import thinking_switch
from interp.study.config import RunConfig
from interp.study.records import Labels, PairedRow
from interp.study.thought_records import Thinking, ThoughtChange, ThoughtShares

__all__ = ["shares", "thinking_report"]

Item = tuple[str, str, float | None]  # language, completion, P(empty thought)


def shares(texts: Sequence[str], p_empty: Sequence[float | None] = ()) -> ThoughtShares:
    """How these completions used their thought; `p_empty`: their prompts' empty-thought probabilities."""
    n = len(texts)
    measured = [p for p in p_empty if p is not None and math.isfinite(p)]
    mean_p = sum(measured) / len(measured) if measured else None
    if not n:
        return ThoughtShares(0, None, None, None, mean_p)
    kinds = [thought(t) for t in texts]
    return ThoughtShares(n, kinds.count("empty") / n, kinds.count("unfinished") / n, kinds.count("absent") / n, mean_p)


def _by_lang(items: Sequence[Item]) -> dict[str, ThoughtShares]:
    out = {}
    for lang in ["all", *sorted({i[0] for i in items})]:
        mine = [i for i in items if lang in ("all", i[0])]
        out[lang] = shares([i[1] for i in mine], [i[2] for i in mine])
    return out


def thinking_report(model: Model, labels: Labels, paired: Sequence[PairedRow], directions: dict[str, Direction],
                    config: RunConfig) -> Thinking | None:
    """The report's thinking block (None for a model without a <think> vocabulary)."""
    mode = thought_mode(model)
    if mode == "none":
        return None
    switch = thinking_switch(model.template_kwargs)
    if mode == "closed":
        return Thinking(mode, switch, 0, {}, {})
    grouped: dict[str, dict[str, list[Item]]] = {}
    for r in labels:
        grouped.setdefault(r.set, {}).setdefault(r.split, []).append((r.lang, r.text, r.p_empty_thought))
    by_label = {name: {split: _by_lang(items) for split, items in splits.items()} for name, splits in grouped.items()}
    before_p = {(r.set, r.prompt): r.p_empty_thought for r in labels.split("test")}
    pairs: dict[str, dict[str, list[PairedRow]]] = {}
    for row in paired:
        pairs.setdefault(row.kind, {}).setdefault(row.set, []).append(row)
    ablated = {kind: {name: _change(model, rows, before_p, directions.get(kind)) for name, rows in sets.items()}
               for kind, sets in pairs.items()}
    return Thinking(mode, switch, config.think_tokens, by_label, ablated)


def _change(model: Model, rows: list[PairedRow], before_p: dict[tuple[str, str], float | None],
            direction: Direction | None) -> dict[str, ThoughtChange]:
    """Before and after per language; the ablated empty-thought probability only for a chosen direction
    (a random baseline's vector is not kept)."""
    after_p: list[float | None] = [None] * len(rows)
    if direction is not None:
        with ablate(model, direction):
            after_p = list(empty_thought_probability(model, [r.prompt for r in rows]))
    before = _by_lang([(r.lang, r.text_before, before_p.get((r.set, r.prompt))) for r in rows])
    after = _by_lang([(r.lang, r.text_after, p) for r, p in zip(rows, after_p, strict=True)])
    return {lang: ThoughtChange(before[lang], after[lang]) for lang in before}

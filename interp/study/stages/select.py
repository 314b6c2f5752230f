"""Select: score every candidate by its causal effect on validation prompts and pick one per kind
(interp.core.selection); derived kinds follow from the chosen ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

from interp.behaviour.judge import is_answered, is_suppressed
from interp.behaviour.thinking import thought_prefix
from interp.core.directions import Direction
from interp.core.model import Model
from interp.core.selection import Scorer, SweepData, find_suppression_tokens, sweep
from interp.study.config import Contrast, RunConfig
from interp.study.records import Labels, SweepRow
from interp.study.stages.candidates import Candidates, check_contrast

__all__ = ["build_scorer", "select", "sweep_data"]


def build_scorer(model: Model, labels: Labels) -> tuple[Scorer, list[str]]:
    """The model's own suppression-opening tokens, from its train completions (as generated: without the
    part of a thought the chat template wrote)."""
    rows, prefix = labels.split("train"), thought_prefix(model)
    tokens = find_suppression_tokens(model, [r.text.removeprefix(prefix) for r in rows if is_suppressed(r.label)],
                                     [r.text.removeprefix(prefix) for r in rows if is_answered(r.label)])
    return Scorer(tokens), [model.tokenizer.decode([t]) for t in tokens]


def sweep_data(labels: Labels, c: Contrast, config: RunConfig) -> SweepData:
    """Validation prompts for the sweep: the target set's suppressed (bypass) and the control set's
    answered (induce), harmless for KL."""
    pos, neg = check_contrast(labels, c.name, "val", (c.target,), (c.control,))
    harmless = [r.prompt for r in labels.rows("harmless", "val")]
    n = config.sweep_n
    return SweepData([r.prompt for r in pos][:n], [r.prompt for r in neg][:n], harmless[:n],
                     confirm=harmless[n : n + config.confirm_n])


def select(model: Model, candidates: Candidates, labels: Labels, scorer: Scorer, config: RunConfig,
           contrasts: tuple[Contrast, ...], hashes: dict[str, str],
           done_rows: dict[str, list[dict]] | None = None,
           checkpoint: Callable[[str, list[dict]], None] | None = None,
           ) -> tuple[dict[str, Direction], dict[str, tuple[SweepRow, ...]]]:
    """One direction per kind. `done_rows` and `checkpoint` carry an interrupted sweep's rows per kind."""
    chosen: dict[str, Direction] = {}
    sweeps: dict[str, tuple[SweepRow, ...]] = {}
    for c in contrasts:
        if c.derived:
            if c.of in chosen and c.without in chosen:
                chosen[c.name] = chosen[c.of].without(chosen[c.without], kind=c.name)
            continue
        rows, direction = sweep(model, candidates.by_kind[c.name], sweep_data(labels, c, config), scorer, c.name,
                                config.kl_threshold, positions=config.sweep_positions,
                                offsets=candidates.answered_means[c.name] if config.affine else None,
                                done_rows=(done_rows or {}).get(c.name, ()),
                                checkpoint=partial(checkpoint, c.name) if checkpoint else None)
        chosen[c.name] = replace(direction, prompt_hashes=hashes, method=config.method)
        sweeps[c.name] = tuple(SweepRow(**row) for row in rows)
    return chosen, sweeps

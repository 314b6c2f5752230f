"""Steer: the raw mean difference added at its layer, at each coefficient, on answered control prompts.
Each coefficient's before/after pairs are returned too (kind "<contrast> x<coef>", e.g. "censorship x1.5"),
so a steered suppression rate can be read back against its completions (steering.jsonl)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from interp.behaviour.judge import is_answered
from interp.core.directions import Direction
from interp.core.interventions import steer
from interp.core.measure import kl_under
from interp.core.model import Model
from interp.study.config import Contrast, RunConfig
from interp.study.measures import as_prompts, generate_rows, paired_rows, rates
from interp.study.records import Labels, PairedRow, SteerPoint

__all__ = ["dose_response", "steered_kind"]


def dose_response(model: Model, c: Contrast, direction: Direction, labels: Labels, config: RunConfig,
                  harmless_logits: Callable[[], torch.Tensor]) -> tuple[tuple[SteerPoint, ...], list[PairedRow]]:
    answered = [r for r in labels.rows(c.control, "test") if is_answered(r.label)][: config.steer_n]
    items = as_prompts(answered)
    harmless = [r.prompt for r in labels.rows("harmless", "test")]
    points, rows = [], []
    for coef in config.coefs:
        def intervention(coef: float = coef) -> object:
            return steer(model, direction, coef)

        out = generate_rows(model, items, intervention, config.eval_tokens, description=f"steer {c.name} x{coef}")
        points.append(SteerPoint(coef, rates(out).suppression_rate, len(out),
                                 kl_under(model, harmless, intervention, harmless_logits())))
        rows += paired_rows(steered_kind(c.name, coef), c.control, answered, out)
    return tuple(points), rows


def steered_kind(contrast: str, coef: float) -> str:
    """The kind steering.jsonl files a coefficient's rows under: "censorship x1.5"."""
    return f"{contrast} x{coef:g}"

"""Evaluate: each chosen direction ablated on the test split of its target and control sets, against a
random direction of the same norm, with the damage on harmless prompts (first-token KL, the cross-entropy
of the base model's own continuations, the KL per token along its own 32-token ones, and the capability probe; the sets'
rates carry the share of degenerate completions) and, where the prompts carry reference and official
answers, the truth margin."""

from __future__ import annotations

from collections.abc import Callable

import torch

from interp.core.directions import Direction, random_like
from interp.core.interventions import ablate
from interp.core.measure import Intervention, continuation_ce, kl_under
from interp.core.model import Model
from interp.study.config import SEED, Contrast, RunConfig
from interp.study.damage_records import Damage
from interp.study.measures import as_prompts, generate_rows, paired_rows, rates, set_result, specificity
from interp.study.records import CE, KindResult, Labels, PairedRow, RandomBaseline, Scores, Specificity
from interp.study.stages.truth import refusal_texts, truth_margin

__all__ = ["evaluate_kind"]


def evaluate_kind(model: Model, c: Contrast, direction: Direction, labels: Labels, config: RunConfig,
                  harmless_logits: Callable[[], torch.Tensor],
                  damage: Callable[[Intervention], Damage] | None = None) -> tuple[KindResult, list[PairedRow]]:
    def ablated() -> object:
        return ablate(model, direction)

    sets, paired = {}, []
    for set_name in (c.target, c.control):
        before = labels.rows(set_name, "test")
        after = generate_rows(model, as_prompts(before), ablated, config.eval_tokens,
                              description=f"ablate {direction.kind}: {set_name}", set_name=set_name, split="test")
        sets[set_name] = set_result(before, after)
        paired += paired_rows(direction.kind, set_name, before, after)
    harmless = [r.prompt for r in labels.rows("harmless", "test")]
    kl = kl_under(model, harmless, ablated, harmless_logits())
    ce_rows = labels.rows("harmless", "test")[: config.ce_n]
    ce_args = ([r.prompt for r in ce_rows], [r.text for r in ce_rows])
    ce = CE(continuation_ce(model, *ce_args), continuation_ce(model, *ce_args, intervention=ablated))
    rand = random_like(direction, SEED)
    target_rows = labels.rows(c.target, "test")
    rand_rows = generate_rows(model, as_prompts(target_rows), lambda: ablate(model, rand), config.eval_tokens,
                              description=f"random baseline {c.name}", set_name=c.target, split="test")
    paired += paired_rows(rand.kind, c.target, target_rows, rand_rows)
    random_baseline = RandomBaseline(rates(rand_rows),
                                     kl_under(model, harmless, lambda: ablate(model, rand), harmless_logits()))
    spec = None
    if c.specificity:
        t, k = sets[c.target], sets[c.control]
        spec = Specificity(specificity(t.baseline, k.baseline), specificity(t.ablated, k.ablated))
    items = as_prompts(target_rows)
    truth = (truth_margin(model, items, direction, refusal_texts(labels))
             if any(p.reference and p.official for p in items) else None)
    result = KindResult(direction.layer, direction.position, Scores(**direction.scores), sets,
                        sets[c.target].baseline["all"], sets[c.target].ablated["all"], kl, ce, random_baseline, spec,
                        truth=truth, damage=damage(ablated) if damage else None)
    return result, paired

"""Choosing one direction among the (layer, position) candidates by its causal effect (Arditi et al.).

The sweep never generates: it scores the next-token distribution at the last prompt position.
- score: log-odds that the reply opens with one of the model's own suppression-opening tokens, found
  from its observed suppressed vs answered completions (not hand-coded per model).
- bypass: mean score on suppressed prompts with the candidate ablated everywhere (lower is better).
- induce: mean score on answered prompts with the raw candidate added at its layer (must be > 0).
- kl: mean KL(base || ablated) of next-token distributions on harmless prompts (must stay small).
- kl_confirm: the same KL on a larger harmless set, measured for the front-runners only. A KL from 8
  prompts is noisy (0.096 in the sweep became 0.158 on 60 test prompts), so the pick must pass it too.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from interp.core.directions import Direction, random_like, unit
from interp.core.errors import InterpError
from interp.core.interventions import ablate, steer
from interp.core.measure import last_logits, mean_kl
from interp.core.model import Model
from interp.core.progress import advance, progress_bar

__all__ = ["Scorer", "SweepData", "confirmed_best", "find_suppression_tokens", "first_token", "sweep", "versus_random"]


@dataclass
class Scorer:
    token_ids: list[int]  # suppression-opening tokens

    def score(self, logits: torch.Tensor) -> torch.Tensor:  # [batch, vocab] -> [batch]
        logp = torch.log_softmax(logits.float(), dim=-1)
        p_suppress = torch.logsumexp(logp[:, self.token_ids], dim=-1).exp().clamp(1e-7, 1 - 1e-7)
        return torch.log(p_suppress) - torch.log1p(-p_suppress)


def first_token(model: Model, text: str) -> int | None:
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if ids else None


def find_suppression_tokens(
    model: Model, suppressed: Sequence[str], answered: Sequence[str], max_tokens: int = 8
) -> list[int]:
    """First tokens common in suppressed completions and at least twice as rare in answered ones."""
    if not suppressed:
        raise InterpError("no suppressed completions to learn suppression-opening tokens from")
    s_counts = Counter(t for t in (first_token(model, c) for c in suppressed) if t is not None)
    a_counts = Counter(t for t in (first_token(model, c) for c in answered) if t is not None)
    n_s, n_a = max(sum(s_counts.values()), 1), max(sum(a_counts.values()), 1)
    ranked = sorted(s_counts, key=lambda t: (-s_counts[t], t))
    chosen = [t for t in ranked if s_counts[t] / n_s >= 0.05 and s_counts[t] / n_s > 2 * a_counts[t] / n_a]
    return chosen[:max_tokens] or ranked[:1]


@dataclass
class SweepData:
    suppressed: list[str]  # validation prompts the model suppresses
    answered: list[str]  # validation prompts it answers
    harmless: list[str]  # prompts whose next-token distribution must not move (every candidate)
    confirm: list[str] = field(default_factory=list)  # more harmless prompts: the front-runners' KL again


def sweep(
    model: Model,
    candidates: torch.Tensor,  # [layer, pos, d_model] raw mean differences
    data: SweepData,
    scorer: Scorer,
    kind: str,
    kl_threshold: float = 0.1,
    max_layer_fraction: float = 0.8,
    positions: int | None = None,
    show_progress: bool = True,
    offsets: torch.Tensor | None = None,  # [layer, pos, d_model]: affine ablation targets (answered means)
    done_rows: Sequence[dict] = (),
    checkpoint: Callable[[list[dict]], None] | None = None,
) -> tuple[list[dict], Direction]:
    """Score every candidate; pick the lowest bypass among those passing the filters.

    done_rows: rows an interrupted sweep already scored (from `checkpoint`, which receives the rows so far
    after each candidate): they are reused, so a resumed sweep continues where it stopped.

    Filters: KL on harmless <= kl_threshold, induce score > 0; layers past max_layer_fraction are not
    scored at all. If none passes both, the induce filter is dropped, then the KL one (recorded).
    """
    n_layers, n_pos = model.n_layers, candidates.shape[1]
    base_harmless = last_logits(model, data.harmless)
    rows: list[dict] = []
    earlier = {(r["layer"], r["position"]): r for r in done_rows}
    # resid_pre of each block; the last 20% of layers are never selected, so they are not scored.
    layers = [layer for layer in range(n_layers) if layer < max_layer_fraction * n_layers]
    swept = range(n_pos - (positions or n_pos), n_pos)  # the last `positions` post-instruction tokens
    total = len(layers) * len(swept)
    with progress_bar(f"sweep {kind}", total, unit="candidates", show=show_progress) as bar:
        task = bar.add_task(f"sweep {kind}", total=total, rate="-", visible=show_progress)
        for layer in layers:
            for pos in swept:
                if (layer, pos - n_pos) in earlier:
                    rows.append(dict(earlier[(layer, pos - n_pos)]))
                    advance(bar, task, 1, digits=2)
                    continue
                raw = candidates[layer, pos]
                if raw.norm() < 1e-6 * max(float(candidates[layer].norm()), 1.0):
                    # identical inputs in both sets (layer 0 at template tokens): nothing to ablate
                    rows.append({"layer": layer, "position": pos - n_pos, "bypass_score": None,
                                 "induce_score": None, "kl": None, "skipped": "zero difference"})
                    continue
                d = _candidate(candidates, offsets, layer, pos - n_pos, kind, model)
                with ablate(model, d):
                    ablated = last_logits(model, data.suppressed + data.harmless)
                with steer(model, d, coef=1.0):
                    induced = last_logits(model, data.answered)
                n_s = len(data.suppressed)
                scores = {"bypass_score": float(scorer.score(ablated[:n_s]).mean()),
                          "induce_score": float(scorer.score(induced).mean()),
                          "kl": mean_kl(base_harmless, ablated[n_s:])}
                if not all(math.isfinite(v) for v in scores.values()):  # recorded as skipped: JSON has no NaN
                    scores = {"bypass_score": None, "induce_score": None, "kl": None, "skipped": "non-finite scores"}
                rows.append({"layer": layer, "position": pos - n_pos, **scores})
                if checkpoint is not None:
                    checkpoint(rows)
                advance(bar, task, 1, digits=2)
    scored = [r for r in rows if r["bypass_score"] is not None]
    if not scored:
        raise InterpError(f"{kind}: every candidate direction was zero or gave non-finite scores")
    for row in rows:
        row["passes"] = row in scored and row["kl"] <= kl_threshold and row["induce_score"] > 0
    # If nothing passes, relax in a stated order: the induce filter first, never the KL one unless nothing
    # at all is under the KL threshold. The report records which filters the chosen candidate passed.
    tiers = (("kl+induce", [r for r in scored if r["passes"]]),
             ("kl", [r for r in scored if r["kl"] <= kl_threshold]),
             ("none", scored))
    filters, passing = next((name, group) for name, group in tiers if group)
    best = confirmed_best(model, candidates, sorted(passing, key=lambda r: r["bypass_score"]), data, kind,
                          kl_threshold if filters != "none" else math.inf, offsets)
    scores = {k: best[k] for k in ("bypass_score", "induce_score", "kl", "kl_confirm") if k in best}
    scores["filters_passed"] = filters
    chosen = replace(_candidate(candidates, offsets, best["layer"], best["position"], kind, model), scores=scores)
    return rows, chosen



def _candidate(candidates: torch.Tensor, offsets: torch.Tensor | None, layer: int, position: int, kind: str,
               model: Model) -> Direction:
    raw = candidates[layer, position]
    offset = None if offsets is None else offsets[:, position]  # [layer, d_model]: each block's own target
    return Direction(unit(raw), raw, layer, position, kind, model.fingerprint, offset=offset)


def confirmed_best(model: Model, candidates: torch.Tensor, ranked: list[dict], data: SweepData, kind: str,
                   kl_threshold: float, offsets: torch.Tensor | None = None, tries: int = 8) -> dict:
    """The best-ranked candidate whose KL on the confirm set is also under the threshold.

    Only the first `tries` are measured; if none confirms, the one with the lowest confirmed KL wins.
    """
    if not data.confirm:
        return ranked[0]
    base = last_logits(model, data.confirm)
    for row in ranked[:tries]:
        with ablate(model, _candidate(candidates, offsets, row["layer"], row["position"], kind, model)):
            row["kl_confirm"] = mean_kl(base, last_logits(model, data.confirm))
        if row["kl_confirm"] <= kl_threshold:
            return row
    return min(ranked[:tries], key=lambda r: r["kl_confirm"])


def versus_random(model: Model, direction: Direction, prompts: Sequence[str], scorer: Scorer,
                  n: int = 10) -> tuple[float, float, list[float]]:
    """Mean first-token suppression score on `prompts`: unedited, with `direction` ablated, and with each of
    n random directions of the same norm ablated (the baseline any real effect must beat)."""
    def score() -> float:
        return float(scorer.score(last_logits(model, prompts)).mean())

    baseline = score()
    with ablate(model, direction):
        selected = score()
    randoms = []
    for seed in range(n):
        with ablate(model, random_like(direction, seed)):
            randoms.append(score())
    return baseline, selected, randoms

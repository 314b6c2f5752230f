"""Candidates: one activation pass over the train prompts of every contrast; each kind's difference of
means at every (layer, post-instruction position)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.behaviour.judge import is_answered, is_suppressed
from interp.core import directions as dirs
from interp.core.activations import collect
from interp.core.errors import InterpError
from interp.core.model import Model
from interp.study.config import Contrast, RunConfig
from interp.study.records import LabelledRow, Labels
from interp.study.rundir import RunDir

__all__ = ["Candidates", "check_contrast", "extract_candidates"]


@dataclass(frozen=True)
class Candidates:
    by_kind: dict[str, torch.Tensor]  # kind (or "kind.lang": one language alone) -> [layer, pos, d_model]
    answered_means: dict[str, torch.Tensor]  # kind -> [layer, pos, d_model]: the affine variant's offsets
    strata: dict[str, dict[str, float]]  # kind -> each language's weight in the contrast

    def tensors(self) -> dict[str, torch.Tensor]:
        return ({f"{k}.candidates": v for k, v in self.by_kind.items()}
                | {f"{k}.answered_mean": v for k, v in self.answered_means.items()})

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], strata: dict) -> Candidates:
        return cls({k.removesuffix(".candidates"): v for k, v in tensors.items() if k.endswith(".candidates")},
                   {k.removesuffix(".answered_mean"): v for k, v in tensors.items() if k.endswith(".answered_mean")},
                   strata)

    @classmethod
    def load(cls, run_dir: RunDir) -> Candidates:
        """The candidates a run's activations stage saved."""
        tensors, meta = run_dir.candidates()
        return cls.from_tensors(tensors, meta["strata"])


def check_contrast(labels: Labels, kind: str, split: str, suppressed_from: tuple[str, ...],
                   answered_from: tuple[str, ...]) -> tuple[list[LabelledRow], list[LabelledRow]]:
    """The suppressed prompts of some sets and the answered prompts of others, in one split."""
    pos = [r for name in suppressed_from for r in labels.rows(name, split) if is_suppressed(r.label)]
    neg = [r for name in answered_from for r in labels.rows(name, split) if is_answered(r.label)]
    if not pos or not neg:
        what = (f"suppresses none of the {'/'.join(suppressed_from)}" if not pos
                else f"answers none of the {'/'.join(answered_from)}")
        raise InterpError(f"{kind}: the model {what} {split} prompts, so there is no behavioural contrast; "
                          "try another model or prompt set (see `interp label`)")
    return pos, neg


def extract_candidates(model: Model, labels: Labels, config: RunConfig, contrasts: tuple[Contrast, ...]) -> Candidates:
    """mean_diff is stratified by language (see directions.stratified_difference); pca and probe pool."""
    texts, groups = [], []
    for c in contrasts:
        pos, neg = check_contrast(labels, c.name, "train", c.suppressed_from, c.answered_from)
        texts += [r.prompt for r in pos + neg]
        groups += [f"{c.name}:suppressed|{r.lang}" for r in pos] + [f"{c.name}:answered|{r.lang}" for r in neg]
    acts = collect(model, texts, groups, batch_size=config.batch_size, keep=config.method != "mean_diff")
    langs = sorted({g.split("|")[1] for g in groups})
    by_kind, means, strata = {}, {}, {}
    for c in contrasts:
        a, b = f"{c.name}:suppressed", f"{c.name}:answered"
        pooled_a, pooled_b = [f"{a}|{x}" for x in langs], [f"{b}|{x}" for x in langs]
        means[c.name] = acts.mean(*pooled_b).float()
        if config.method == "mean_diff":
            by_kind[c.name], strata[c.name] = dirs.stratified_difference(acts, a, b, langs)
            for lang in (x for x in langs if strata[c.name].get(x)):  # each language alone (transfer)
                by_kind[f"{c.name}.{lang}"] = dirs.mean_difference(acts.mean(f"{a}|{lang}"), acts.mean(f"{b}|{lang}"))
        else:
            pooled = acts.merged({g: "suppressed" for g in pooled_a} | {g: "answered" for g in pooled_b})
            by_kind[c.name] = dirs.build_candidates(pooled, "suppressed", "answered", config.method)
            strata[c.name] = {"pooled": 1}
    return Candidates(by_kind, means, strata)

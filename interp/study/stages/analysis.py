"""Analysis: model-side numbers the figures draw later without the model (projections, logit lens), and
the cosine between the censorship and refusal candidates at every layer."""

from __future__ import annotations

import torch

from interp.core.analysis import logit_lens, projections
from interp.core.directions import Direction
from interp.core.model import Model
from interp.study.records import Labels, LogitLens, Projection

__all__ = ["analyse", "cosine_per_layer"]


def analyse(model: Model, labels: Labels, chosen: dict[str, Direction]) -> tuple[tuple[Projection, ...], dict[str, LogitLens]]:
    rows = [{"set": r.set, "prompt": r.prompt, "label": r.label, "lang": r.lang} for r in labels.split("test")]
    projected = tuple(Projection(p["set"], p["label"], p["lang"], {k: p[k] for k in chosen})
                      for p in projections(model, rows, chosen))
    lens = {k: _lens(logit_lens(model, d)) for k, d in chosen.items()}
    return projected, lens


def cosine_per_layer(candidates: dict[str, torch.Tensor], chosen: dict[str, Direction]) -> tuple[float, ...]:
    c_pos, r_pos = chosen["censorship"].position, chosen["refusal"].position
    cens, ref = candidates["censorship"][:, c_pos], candidates["refusal"][:, r_pos]
    return tuple(float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in zip(cens, ref, strict=True))


def _lens(found: dict) -> LogitLens:
    return LogitLens(tuple(found["promoted"]), tuple(found["suppressed"]), found.get("skipped"))

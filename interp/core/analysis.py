"""Model-side numbers that figures draw later without the model: projections and the logit lens."""

from __future__ import annotations

import torch

from interp.core.activations import collect
from interp.core.directions import Direction
from interp.core.model import Model

__all__ = ["logit_lens", "projections"]


def projections(model: Model, rows: list[dict], directions: dict[str, Direction]) -> list[dict]:
    """Each prompt's activation projected on each direction, at that direction's layer and position.

    rows: dicts with prompt, set, label, lang. Returns the rows with one float per direction kind.
    """
    layers = sorted({d.layer for d in directions.values()})
    acts = collect(model, [r["prompt"] for r in rows], layers=layers, keep=True, show_progress=False)
    per_prompt = acts.per_prompt  # [prompt, len(layers), pos, d_model]
    out = []
    for i, row in enumerate(rows):
        entry = {k: row[k] for k in ("set", "label", "lang")}
        for kind, d in directions.items():
            vector = per_prompt[i, layers.index(d.layer), d.position]
            entry[kind] = float(vector @ d.unit)
        out.append(entry)
    return out


@torch.no_grad()
def logit_lens(model: Model, direction: Direction, k: int = 12) -> dict[str, list[str]]:
    """Tokens the direction promotes and suppresses when read straight through the unembedding."""
    unembed = model.hf.get_output_embeddings().weight  # [vocab, d_model]
    if unembed.device.type == "meta":  # a remote (NDIF) model: no weights here
        return {"promoted": [], "suppressed": [], "skipped": "the unembedding is not local (remote model)"}
    unembed = unembed.float()
    norm = model.hf.get_submodule(model.arch.final_norm)
    scale = getattr(norm, "weight", None)
    u = direction.unit.to(unembed.device) * (scale.float() if scale is not None else 1.0)
    logits = unembed @ u
    top, bottom = logits.topk(k).indices.tolist(), (-logits).topk(k).indices.tolist()
    decode = model.tokenizer.decode
    return {"promoted": [decode([t]) for t in top], "suppressed": [decode([t]) for t in bottom]}

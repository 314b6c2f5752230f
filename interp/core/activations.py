"""Residual-stream activations at every layer and every post-instruction position.

Layers are indexed 0..n_layers: index L < n_layers is resid_pre of block L, index n_layers the final
resid_post. Positions are the chat template's post-instruction tokens, counted from the end (position
-k..-1), which left padding keeps aligned across a batch. The forward stops after the last needed
layer, so the LM head is never computed. Sums are accumulated in float64 per group, so means need no
per-prompt storage; `keep=True` also returns each prompt's activations (float32) for probes, PCA and
projections.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from interp.core.atomic import atomic_save_tensors, atomic_write_json
from interp.core.errors import InterpError
from interp.core.generation import length_batches
from interp.core.model import Model
from interp.core.progress import advance, progress_bar

__all__ = ["Activations", "collect", "read_stream"]


@dataclass
class Activations:
    sums: dict[str, torch.Tensor]  # group -> [layer, pos, d_model] float64
    counts: dict[str, int]
    per_prompt: torch.Tensor | None  # [prompt, layer, pos, d_model] float32, in input order
    groups: list[str]  # group of each prompt, in input order

    def merged(self, mapping: dict[str, str]) -> Activations:
        """A regrouped view: every group named in `mapping` is renamed (groups can merge); sums add up."""
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for group, total in self.sums.items():
            name = mapping.get(group, group)
            sums[name] = sums[name] + total if name in sums else total.clone()
            counts[name] = counts.get(name, 0) + self.counts[group]
        return Activations(sums, counts, self.per_prompt, [mapping.get(g, g) for g in self.groups])

    def of(self, group: str) -> torch.Tensor:  # [n_in_group, layer, pos, d_model]
        if self.per_prompt is None:
            raise InterpError("per-prompt activations were not kept (collect with keep=True)")
        return self.per_prompt[[i for i, g in enumerate(self.groups) if g == group]]

    def mean(self, *groups: str) -> torch.Tensor:  # [layer, pos, d_model] float64
        count = sum(self.counts.get(g, 0) for g in groups)
        if count == 0:
            raise InterpError(f"no prompts in group(s) {', '.join(groups)}: cannot take a mean")
        return sum(self.sums[g] for g in groups if g in self.sums) / count


def _check_finite(resid: dict[int, torch.Tensor]) -> None:
    for layer, tensor in sorted(resid.items()):
        if not torch.isfinite(tensor).all():
            raise InterpError(f"non-finite activations (NaN/inf) at layer {layer}: try --dtype fp32")


def collect(
    model: Model,
    prompts: Sequence[str],
    groups: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
    keep: bool = False,
    show_progress: bool = True,
    stream_to: Path | None = None,
) -> Activations:
    """One batched, hooked pass over prompts; sums per group (default: one group 'all').

    stream_to: a directory that receives each batch's full activations as `chunk-NNNNN.safetensors`
    (tensors `resid` [batch, layer, pos, d_model] float32 and `index`, the prompts' input positions) and,
    once all are written, `chunks.json`; memory stays bounded by the batch, whatever the prompt count.
    """
    groups = list(groups) if groups is not None else ["all"] * len(prompts)
    layers = list(layers) if layers is not None else list(range(model.n_layers + 1))
    n_pos, d = model.n_positions, model.d_model
    sums = {g: torch.zeros(len(layers), n_pos, d, dtype=torch.float64) for g in dict.fromkeys(groups)}
    counts = dict.fromkeys(sums, 0)
    kept = torch.zeros(len(prompts), len(layers), n_pos, d) if keep else None
    chunks: list[str] = []
    if stream_to is not None:
        Path(stream_to).mkdir(parents=True, exist_ok=True)
    with progress_bar("activations", len(prompts), show=show_progress) as bar:
        task = bar.add_task("activations", total=len(prompts), rate="-", visible=show_progress)
        for indices in length_batches(model, prompts, batch_size):
            batch = model.format_chat([prompts[i] for i in indices])
            resid = model.backend.run(batch, read=layers, logits="none").resid
            _check_finite(resid)
            # [layer, batch, pos, d] -> per prompt
            stacked = torch.stack([resid[layer][:, -n_pos:].double().cpu() for layer in layers])
            if stream_to is not None:
                chunks.append(f"chunk-{len(chunks):05d}.safetensors")
                atomic_save_tensors({"resid": stacked.permute(1, 0, 2, 3).float().contiguous(),
                                     "index": torch.tensor(indices)}, Path(stream_to) / chunks[-1])
            for row, index in enumerate(indices):
                sums[groups[index]] += stacked[:, row]
                counts[groups[index]] += 1
                if kept is not None:
                    kept[index] = stacked[:, row].float()
            advance(bar, task, len(indices))
    if stream_to is not None:
        atomic_write_json(Path(stream_to) / "chunks.json", {"chunks": chunks, "layers": layers, "positions": n_pos,
                                                             "prompts": list(prompts), "groups": groups})
    return Activations(sums, counts, kept, groups)


def read_stream(directory: Path) -> torch.Tensor:
    """[prompt, layer, pos, d_model] from streamed chunks, in the original prompt order."""
    from safetensors.torch import load_file

    meta = json.loads((Path(directory) / "chunks.json").read_text())
    out: torch.Tensor | None = None
    for name in meta["chunks"]:
        chunk = load_file(str(Path(directory) / name))
        if out is None:
            out = torch.zeros(len(meta["prompts"]), *chunk["resid"].shape[1:])
        out[chunk["index"]] = chunk["resid"]
    if out is None:
        raise InterpError(f"{directory}: no activation chunks")
    return out

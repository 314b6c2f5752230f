"""Variants of directional ablation, each both a hook (`ablate_variant`) and a weight edit (`orthogonalize_variant`).

- A per-layer strength `Kernel` (heretic's shape): layer l's writes lose the fraction s_l of their component in
  the subspace. The weight edit W <- W - s_l Q Q^T W of layer l's writers equals the hook exactly (pre-norm).
- k directions at once: `Variant.directions` are orthonormalised by QR into Q [d_model, k]; W <- W - Q Q^T W
  equals projecting the k-dimensional subspace out of every write.
- Norm-preserving (`norm_preserving=True`; grimjim's MPOA, heretic's "full" row normalisation): after the
  projection every vector a writer can write (a Linear's column, a token's embedding row, a bias) is rescaled
  back to its original norm. The writes still have no component in the subspace, but a write x -> W x becomes
  (I - Q Q^T) W diag(c) x, which is no function of W x: no hook equals it. The hook analogue rescales each write
  back to its own norm; the two agree exactly on the embedding (its input is one-hot: each write is one row).
- Biprojection (`biproject`): the direction made orthogonal to the harmless mean first; the result is a plain
  direction, so hook and weight edit agree exactly.

Behind a post-norm (Gemma 2/3, GLM-4) the weight edit is `orthogonalize`'s oblique one, per basis vector: it
writes the hook's result up to a per-token scale, and those writers are listed in `approximate`, with a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

import torch

from interp.core.directions import Direction, unit
from interp.core.errors import InterpError
from interp.core.interventions import (
    Orthogonalized,
    check_direction,
    checked_writers,
    digest,
    edited,
    oblique_pair,
    untie_output,
)
from interp.core.model import Model
from interp.core.types import Edit

__all__ = ["Kernel", "Variant", "ablate_variant", "biproject", "orthogonalize_variant"]


@dataclass(frozen=True)
class Kernel:
    """Strength per block, heretic's shape: `peak` at `peak_layer`, falling linearly in |layer - peak_layer| to
    `floor` at distance `width`; blocks further away are not edited (strength 0), as in heretic. The embedding
    writes the stream block 0 reads, so it takes block 0's strength."""

    peak_layer: float
    width: float
    peak: float = 1.0
    floor: float = 0.0

    def __post_init__(self) -> None:
        values = (self.peak_layer, self.width, self.peak, self.floor)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise InterpError(f"kernel values must be finite numbers, got {self}")
        if self.width < 0:
            raise InterpError(f"kernel width must be >= 0 layers, got {self.width}")

    def strength(self, layer: int) -> float:
        distance = abs(layer - self.peak_layer)
        if distance > self.width:
            return 0.0
        if self.width == 0:
            return float(self.peak)
        return self.peak + (distance / self.width) * (self.floor - self.peak)


@dataclass(frozen=True)
class Variant:
    """What to ablate and how: the directions (one, or k spanning a subspace), a per-layer kernel (None:
    strength 1 everywhere) and whether weight edits keep each written vector's norm."""

    directions: tuple[Direction, ...]
    kernel: Kernel | None = None
    norm_preserving: bool = False

    def __post_init__(self) -> None:
        given = self.directions
        object.__setattr__(self, "directions", (given,) if isinstance(given, Direction) else tuple(given))
        if not self.directions or not all(isinstance(d, Direction) for d in self.directions):
            raise InterpError("a variant needs one or more Direction objects")

    def strengths(self, n_layers: int) -> list[float]:
        return [1.0 if self.kernel is None else self.kernel.strength(layer) for layer in range(n_layers)]

    def basis(self) -> torch.Tensor:
        """Q [d_model, k]: an orthonormal basis of the directions' span, by QR in float32."""
        units = torch.stack([d.unit.detach().float().cpu() for d in self.directions], dim=1)  # [d_model, k]
        q, r = torch.linalg.qr(units)
        pivots = r.diagonal().abs()
        if len(self.directions) > units.shape[0] or bool((pivots < 1e-4).any()):
            kinds = ", ".join(d.kind for d in self.directions)
            raise InterpError(f"the {len(self.directions)} directions ({kinds}) are linearly dependent: "
                              "drop the ones the others span")
        return q

    @property
    def key(self) -> str:
        """Names the edit exactly (the directions' float32 bytes, the kernel, the norm flag) for the cache."""
        units = torch.stack([d.unit for d in self.directions])
        return f"variant:{digest(units)}:{self.kernel!r}:{'norm' if self.norm_preserving else 'plain'}"

    @property
    def tag(self) -> str:
        """A short readable name for the edited model's fingerprint."""
        k = self.kernel
        shape = "" if k is None else f"~k({k.peak_layer:g},{k.width:g},{k.peak:g},{k.floor:g})"
        return "+".join(d.kind for d in self.directions) + shape + ("~norm" if self.norm_preserving else "")


def biproject(direction: Direction, harmless_mean: torch.Tensor | None = None) -> Direction:
    """The direction made orthogonal to the harmless mean activation at its layer, renormalised (grimjim's
    biprojection), so ablating it leaves the harmless mean itself unmoved at that layer.

    `harmless_mean` is [d_model] or one row per block ([layer, d_model], row `direction.layer` is used); by default
    the direction's offset (the answered-set means selection keeps for the affine variant). The result has no
    offset: it is ablated to zero, not affinely."""
    mean = direction.offset if harmless_mean is None else harmless_mean
    if mean is None:
        raise InterpError(f"biproject needs the harmless mean for {direction.kind!r}: pass harmless_mean, or select "
                          "the direction with --affine (which keeps the answered-set means)")
    mean = mean.detach().float().cpu()
    if mean.ndim == 2 and mean.shape[0] > direction.layer:
        mean = mean[direction.layer]
    if tuple(mean.shape) != (direction.d_model,):
        raise InterpError(f"harmless mean has shape {tuple(mean.shape)}: give one [{direction.d_model}] vector or "
                          f"one per block ([> {direction.layer}, {direction.d_model}])")
    h = unit(mean)
    u = direction.unit.float().cpu()
    residual = u - (u @ h) * h
    if residual.norm() < 1e-6:
        raise InterpError(f"{direction.kind} lies along the harmless mean: biprojection leaves nothing")
    new = residual / residual.norm()
    return replace(direction, unit=new, raw=new * (direction.raw.float().cpu() @ new), offset=None,
                   kind=f"{direction.kind}_biprojected")


def _prepare(model: Model, variant: Variant) -> tuple[torch.Tensor, list[float]]:
    """Q [d_model, k] and each block's strength, once the variant is checked against the model."""
    for direction in variant.directions:
        check_direction(model, direction)
        if direction.offset is not None:
            raise InterpError(f"direction {direction.kind!r} carries answered-set means (the affine variant), which "
                              "variants do not apply: use ablate, or biproject(direction) to use them")
    kernel, n = variant.kernel, model.n_layers
    if kernel is not None and not 0 <= kernel.peak_layer <= n - 1:
        raise InterpError(f"kernel peak_layer must be in 0..{n - 1}, got {kernel.peak_layer}")
    strengths = variant.strengths(n)
    if not any(strengths):
        raise InterpError(f"kernel {kernel} gives every block strength 0: nothing would be edited")
    return variant.basis(), strengths


def _rescaled(vectors: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """vectors [..., d] scaled to norms [..., 1]; a vector projected to (almost) nothing keeps its length, since
    it has no direction left to keep."""
    now = vectors.norm(dim=-1, keepdim=True)
    scale = torch.where(now > 1e-6 * norms, norms / now.clamp_min(torch.finfo(now.dtype).tiny), 1.0)
    return vectors * scale


def _remove(v: torch.Tensor, a: torch.Tensor, b: torch.Tensor, strength: float, norm_preserving: bool) -> torch.Tensor:
    """v [..., d_model] float32 with v -> v - s A B^T v (A = B = Q: the projection), then rescaled to its norm."""
    a, b = a.to(v.device), b.to(v.device)
    out = v - strength * (v @ b) @ a.T
    return _rescaled(out, v.norm(dim=-1, keepdim=True)) if norm_preserving else out


def _hook(q: torch.Tensor, strength: float, norm_preserving: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: _remove(x.float(), q, q, strength, norm_preserving).to(x.dtype)


def _write_edits(model: Model, variant: Variant) -> list[Edit]:
    """One write Edit per distinct strength, at the blocks that have it (the embedding, layer -1, with block 0)."""
    q, strengths = _prepare(model, variant)
    q = q.to(model.device)
    by_strength: dict[float, list[int]] = {}
    for layer, s in enumerate(strengths):
        if s:
            by_strength.setdefault(s, []).extend([-1, layer] if layer == 0 else [layer])
    return [Edit("write", _hook(q, s, variant.norm_preserving), layers=frozenset(layers),
                 key=f"{variant.key}:{s!r}:{layers}") for s, layers in by_strength.items()]


@contextmanager
def ablate_variant(model: Model, variant: Variant) -> Iterator[Model]:
    """Remove the variant's subspace from the residual writes: write x of block l -> x - s_l Q Q^T x (every write
    for the embedding, attention and MLP), then, if norm-preserving, x rescaled back to its norm."""
    with edited(model, *_write_edits(model, variant)) as m:
        yield m


def _along(w: torch.Tensor, axis: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """w with fn applied to its [d_model] vectors along `axis`, in float32."""
    return fn(w.float().movedim(axis, -1)).movedim(-1, axis).to(w.dtype)


def _writer_layers(model: Model) -> list[int]:
    """The block whose strength each writer of `model.writers` takes (the embedding: block 0)."""
    arch = model.arch
    return [0] + [layer for layer in range(model.n_layers) for sub in arch.sublayers(layer) for _ in sub.weights]


@torch.no_grad()
def orthogonalize_variant(model: Model, variant: Variant) -> Orthogonalized:
    """Edit the writers' weights in place: W <- W - s_l Q Q^T W along the residual axis for block l's writers
    (biases too; a writer with strength 0 is left alone), each written vector then rescaled to its norm if
    norm-preserving. `approximate` lists the writers whose edit is not the hook's function: those behind a
    post-norm (oblique edit) and, norm-preserving, every writer but the embedding."""
    q, strengths = _prepare(model, variant)
    writers = checked_writers(model)
    if strengths[0]:
        untie_output(model)
    changed, approximate = [], []
    for writer, layer in zip(writers, _writer_layers(model), strict=True):
        if not strengths[layer]:
            continue
        pairs = [oblique_pair(writer, column) for column in q.T]
        a, b = (torch.stack(side, dim=1) for side in zip(*pairs, strict=True))  # [d_model, k] each
        edit = partial(_remove, a=a, b=b, strength=strengths[layer], norm_preserving=variant.norm_preserving)
        weight = writer.weight
        if weight.ndim == 3:  # fused experts [E, d_model, d_ff]: one at a time, no fp32 copy of them all
            for expert in weight:
                expert.copy_(_along(expert, writer.axis - 1, edit))
        else:
            weight.copy_(_along(weight, writer.axis, edit))
        if writer.bias is not None:
            writer.bias.copy_(_along(writer.bias, -1, edit))
        changed.append(writer.name)
        if writer.post_norm is not None or (variant.norm_preserving and writer.axis != -1):
            approximate.append(writer.name)
    behind_norm = [w.name for w in writers if w.post_norm is not None and w.name in changed]
    if behind_norm:
        warnings.warn(f"{len(behind_norm)} writers feed a post-norm ({behind_norm[0]}, ...): the weight edit is the "
                      "hook's up to a per-token scale", stacklevel=2)
    model.fingerprint = f"{model.fingerprint}+orth:{variant.tag}"
    return Orthogonalized(model, tuple(changed), len(writers), tuple(approximate))

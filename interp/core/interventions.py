"""Interventions: directional ablation, activation steering, and weight orthogonalisation.

`ablate` and `steer` are context managers: they register a pure `Edit` on the model, which whichever
backend is in use applies in every forward pass (generation included), and remove it in `finally`.
`orthogonalize` edits the weights that write to the residual stream so the model never writes the
direction: the same function as `ablate`, baked into an exportable HF model (except behind a post-norm,
Gemma 2/3 and GLM-4, where it never writes the direction but is not exactly the hook's function).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

import torch

from interp.core.archs import Writer
from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.model import Model
from interp.core.types import Edit

__all__ = ["Orthogonalized", "ablate", "check_direction", "checked_writers", "digest", "edited", "oblique_pair",
           "orthogonalize", "project_out", "steer", "untie_output"]


def check_direction(model: Model, direction: Direction) -> None:
    """Refuse a direction that would silently turn the model's output into garbage."""
    if direction.unit.ndim != 1 or direction.raw.shape != direction.unit.shape:
        raise InterpError(f"a direction is one [d_model] vector; got unit {tuple(direction.unit.shape)}, "
                          f"raw {tuple(direction.raw.shape)}")
    if direction.d_model != model.d_model:
        raise InterpError(f"direction has d_model {direction.d_model}, the model has {model.d_model}")
    tensors = [direction.unit, direction.raw] + ([direction.offset] if direction.offset is not None else [])
    if not all(bool(torch.isfinite(t).all()) for t in tensors):
        raise InterpError(f"direction {direction.kind!r} has non-finite values (NaN or inf): recompute it")
    norm = float(direction.unit.float().norm())
    if abs(norm - 1.0) > 1e-3:
        raise InterpError(f"direction {direction.kind!r} is not a unit vector (norm {norm:.4g}): its file is "
                          "corrupt or was edited; recompute it")
    offset = direction.offset
    if offset is None:
        return
    rows = offset.reshape(-1, offset.shape[-1]).shape[0]
    if offset.shape[-1] != model.d_model or 1 < rows < model.n_layers:
        raise InterpError(f"direction offset has shape {tuple(offset.shape)}: give one [d_model] target or one "
                          f"per block ([>= {model.n_layers}, {model.d_model}])")


def digest(vector: torch.Tensor) -> str:
    """Names a vector exactly (its float32 bytes), so edits by the same vector share cached completions."""
    return hashlib.sha256(vector.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def project_out(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """x minus its component along unit vector u; computed in float32 so bf16 leaves no residue."""
    xf, u = x.float(), u.to(x.device)  # under a device map, each layer may sit on another device
    return (xf - (xf @ u)[..., None] * u).to(x.dtype)


@contextmanager
def edited(model: Model, *edits: Edit) -> Iterator[Model]:
    model.edits.extend(edits)
    try:
        yield model
    finally:
        for edit in edits:
            model.edits.remove(edit)


def _set_component(x: torch.Tensor, u: torch.Tensor, target: float) -> torch.Tensor:
    """x with its component along unit vector u replaced by `target`."""
    return (project_out(x, u).float() + target * u.to(x.device)).to(x.dtype)


@contextmanager
def ablate(model: Model, direction: Direction) -> Iterator[Model]:
    """Project the direction out of every write to the residual stream, at every layer and position.

    A direction with an `offset` (the affine variant) instead sets the component along u to the
    answered-set mean's, x - ((x - mu_l) . u) u, at resid_pre of every block l. The offset holds one
    mean per block ([layer, d_model]): the residual norm grows with depth, so one layer's target put
    everywhere moves harmless activations far (KL ~10 on the embedded Qwen). A [d_model] offset is one
    target for every block.
    """
    check_direction(model, direction)
    u = direction.unit.to(model.device, torch.float32)
    if direction.offset is None:
        edits = [Edit("write", lambda x: project_out(x, u), key=f"ablate:{digest(u)}")]
    else:
        means = direction.offset.float().reshape(-1, direction.d_model)  # [layer or 1, d_model]
        targets = torch.broadcast_to((means @ direction.unit.float())[: model.n_layers], (model.n_layers,))
        edits = [Edit("resid_pre", partial(_set_component, u=u, target=t), layers=frozenset({layer}),
                      key=f"set:{digest(u)}:{layer}:{t!r}")
                 for layer, t in enumerate(targets.tolist())]
    with edited(model, *edits) as m:
        yield m


@contextmanager
def steer(
    model: Model, direction: Direction, coef: float, layers: Sequence[int] | None = None, use_raw: bool = True
) -> Iterator[Model]:
    """Add coef x direction to resid_pre at `layers` (default: the direction's own layer), all positions.

    With use_raw (default) the added vector is the raw mean difference, so coef=1 moves an answered
    prompt's activation by the gap between the two sets; otherwise the unit vector (coef in residual
    units). Positive coef induces suppression, negative coef suppresses it.
    """
    check_direction(model, direction)
    if not math.isfinite(coef):
        raise InterpError(f"steering coefficient must be a finite number, got {coef}")
    vector = (direction.raw if use_raw else direction.unit).to(model.device, torch.float32) * coef
    chosen = frozenset(layers if layers is not None else [direction.layer])
    if not all(0 <= layer < model.n_layers for layer in chosen):
        raise InterpError(f"steering layers must be in 0..{model.n_layers - 1}, got {sorted(chosen)}")
    edit = Edit("resid_pre", lambda x: (x.float() + vector.to(x.device)).to(x.dtype), layers=chosen,
                key=f"add:{digest(vector)}:{sorted(chosen)}")
    with edited(model, edit) as m:
        yield m


@dataclass(frozen=True)
class Orthogonalized:
    """What `orthogonalize` changed: every residual writer the architecture declares, or it raised."""

    model: Model
    edited: tuple[str, ...]  # writer tensors changed (a fused experts tensor counts once, all its experts edited)
    declared: int  # how many writer tensors the architecture row declares for this model
    approximate: tuple[str, ...]  # writers with a norm after them: exact "never writes u", not the hook's function

    @property
    def exact(self) -> bool:
        return not self.approximate


def _obliquely(w: torch.Tensor, axis: int, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """w with x -> x - a (b . x) applied along its residual axis, in float32; a = b = u is project_out."""
    moved = w.float().movedim(axis, -1)
    return (moved - (moved @ b)[..., None] * a).movedim(-1, axis).to(w.dtype)


def oblique_pair(writer, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, b) for writer's edit. Behind a post-norm y = g * x / rms(x), writing x - (u/g)((g u) . x) makes
    y exactly orthogonal to u and equal to the hook's (I - u u^T) y up to the per-token factor
    rms(x)/rms(x'): no weight edit can match the hook exactly, since rms(x) is not linear in x."""
    u = u.to(writer.weight.device)
    if writer.post_norm is None:
        return u, u
    ones = torch.ones(1, u.shape[0], device=u.device)
    gain = writer.post_norm(ones).float()[0]  # g up to a scale (eps, 1 + w conventions), which cancels in a b^T
    if gain.abs().min() <= 1e-6 * gain.abs().max():
        raise InterpError(f"{writer.name}: its post-norm has a zero gain, so no weight edit can remove the direction")
    return u / gain, gain * u


def untie_output(model: Model) -> None:
    """A tied unembedding would change with the embedding: give the head its own copy first."""
    head = model.hf.get_output_embeddings()
    embed = model.writers[0].weight
    if head is not None and head.weight.data_ptr() == embed.data_ptr():
        head.weight = torch.nn.Parameter(head.weight.detach().clone(), requires_grad=head.weight.requires_grad)
        model.hf.config.tie_word_embeddings = False
        text_config = getattr(model.hf.config, "get_text_config", lambda: None)()
        if text_config is not None:
            text_config.tie_word_embeddings = False


def checked_writers(model: Model) -> list[Writer]:
    """The model's residual writers, once it is checked that they are every writer the architecture declares
    and that their weights are in memory: a weight edit never silently skips one."""
    writers = model.writers
    if any(w.weight.device.type == "meta" for w in writers):
        raise InterpError("orthogonalize edits weights in memory; this model has offloaded (meta) weights: "
                          "load it without disk offload")
    arch, n = model.arch, model.n_layers
    declared = 1 + sum(len(sub.weights) for layer in range(n) for sub in arch.sublayers(layer))
    owned = {id(p) for p in model.hf.parameters()}
    missed = [w.name for w in writers if id(w.weight) not in owned]
    if missed or len(writers) != declared:
        raise InterpError(f"orthogonalize found {len(writers) - len(missed)} of the {declared} residual writers the "
                          f"architecture declares; not in the model: {', '.join(missed) or 'unresolved writers'}")
    return writers


@torch.no_grad()
def orthogonalize(model: Model, direction: Direction) -> Orthogonalized:
    """Edit every residual writer's weights in place: W <- W - u u^T W along its residual axis (embedding:
    W_E <- W_E - W_E u u^T; every routed expert's slice of a fused tensor; biases too).

    The weights change, so the model carries a new fingerprint (`...+orth:KIND`): directions saved for the
    source model are not silently reused on the edited one. Writers followed by a norm (Gemma 2/3, GLM-4)
    get the oblique edit of `oblique_pair` and are listed in `approximate`, with a warning."""
    check_direction(model, direction)
    writers = checked_writers(model)
    declared = len(writers)
    untie_output(model)
    u = direction.unit.float()
    edited, approximate = [], []
    for writer in writers:
        a, b = oblique_pair(writer, u)
        weight = writer.weight
        if weight.ndim == 3:  # fused experts [E, d_model, d_ff]: one at a time, no fp32 copy of them all
            for expert in weight:
                expert.copy_(_obliquely(expert, writer.axis - 1, a, b))
        else:
            weight.copy_(_obliquely(weight, writer.axis, a, b))
        if writer.bias is not None:
            writer.bias.copy_(_obliquely(writer.bias, -1, a, b))
        edited.append(writer.name)
        if writer.post_norm is not None:
            approximate.append(writer.name)
    if approximate:
        warnings.warn(f"{len(approximate)} writers feed a post-norm ({approximate[0]}, ...): the weight edit leaves "
                      "no component along the direction, but differs from hook ablation by a per-token scale",
                      stacklevel=2)
    model.fingerprint = f"{model.fingerprint}+orth:{direction.kind}"
    return Orthogonalized(model, tuple(edited), declared, tuple(approximate))

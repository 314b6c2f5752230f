"""Interventions: directional ablation, activation steering, and weight orthogonalisation.

`ablate` and `steer` are context managers: they register a pure `Edit` on the model, which whichever
backend is in use applies in every forward pass (generation included), and remove it in `finally`.
`orthogonalize` edits the weights that write to the residual stream so the model never writes the
direction: the same function as `ablate`, baked into an exportable HF model.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import torch

from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.model import Model
from interp.core.types import Edit

__all__ = ["ablate", "edited", "orthogonalize", "project_out", "steer"]


def _check(model: Model, direction: Direction) -> None:
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


def _digest(vector: torch.Tensor) -> str:
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
    _check(model, direction)
    u = direction.unit.to(model.device, torch.float32)
    if direction.offset is None:
        edits = [Edit("write", lambda x: project_out(x, u), key=f"ablate:{_digest(u)}")]
    else:
        means = direction.offset.float().reshape(-1, direction.d_model)  # [layer or 1, d_model]
        targets = torch.broadcast_to((means @ direction.unit.float())[: model.n_layers], (model.n_layers,))
        edits = [Edit("resid_pre", partial(_set_component, u=u, target=t), layers=frozenset({layer}),
                      key=f"set:{_digest(u)}:{layer}:{t!r}")
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
    _check(model, direction)
    if not math.isfinite(coef):
        raise InterpError(f"steering coefficient must be a finite number, got {coef}")
    vector = (direction.raw if use_raw else direction.unit).to(model.device, torch.float32) * coef
    chosen = frozenset(layers if layers is not None else [direction.layer])
    if not all(0 <= layer < model.n_layers for layer in chosen):
        raise InterpError(f"steering layers must be in 0..{model.n_layers - 1}, got {sorted(chosen)}")
    edit = Edit("resid_pre", lambda x: (x.float() + vector.to(x.device)).to(x.dtype), layers=chosen,
                key=f"add:{_digest(vector)}:{sorted(chosen)}")
    with edited(model, edit) as m:
        yield m


@torch.no_grad()
def orthogonalize(model: Model, direction: Direction) -> Model:
    """Edit the residual writers' weights in place: W <- W - u u^T W (embedding: W_E <- W_E - W_E u u^T).

    The weights change, so the returned model carries a new fingerprint (`...+orth:KIND`): directions
    saved for the source model are not silently reused on the edited one."""
    _check(model, direction)
    embed, *linears = model.writers
    if any(m.weight.device.type == "meta" for m in model.writers):
        raise InterpError("orthogonalize edits weights in memory; this model has offloaded (meta) weights: "
                          "load it without disk offload")
    u = direction.unit.float()
    weight = embed.weight  # [vocab, d_model]
    weight.copy_(project_out(weight, u))
    for linear in linears:  # weight [d_model, d_in]: the output dimension is the residual one
        w, u_here = linear.weight.float(), u.to(linear.weight.device)
        linear.weight.copy_((w - torch.outer(u_here, u_here @ w)).to(linear.weight.dtype))
        if getattr(linear, "bias", None) is not None:
            linear.bias.copy_(project_out(linear.bias, u))
    model.fingerprint = f"{model.fingerprint}+orth:{direction.kind}"
    return model

"""Directions: the `Direction` value object, and candidate directions from activations.

A `Direction` is a unit vector in the residual stream plus its provenance: the raw mean difference,
layer, position, kind, the fingerprint and d_model of the model it came from, the prompt sets' hashes,
the method and its selection scores. Several directions save together as one safetensors file (tensors)
and one JSON file (metadata); loading checks the model and refuses a mismatch.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from interp.core.atomic import atomic_save_tensors, atomic_write_json, check_out_dir, find_non_finite
from interp.core.errors import InterpError

__all__ = ["Direction", "build_candidates", "load", "mean_difference", "pca_direction", "probe_direction", "random_like", "save", "stratified_difference", "unit"]

METHODS = ("mean_diff", "pca", "probe")


@dataclass(frozen=True)
class Direction:
    unit: torch.Tensor  # [d_model] float32, norm 1
    raw: torch.Tensor  # [d_model] float32: the mean difference (for steering with its own scale)
    layer: int
    position: int  # counted from the end of the prompt: -1 is the last token
    kind: str
    model_fingerprint: str
    method: str = "mean_diff"
    prompt_hashes: dict[str, str] = field(default_factory=dict)
    scores: dict[str, float | str] = field(default_factory=dict)
    offset: torch.Tensor | None = None  # [layer, d_model]: answered-set means, for the affine variant

    @property
    def d_model(self) -> int:
        return int(self.unit.shape[0])

    def __neg__(self) -> Direction:
        return replace(self, unit=-self.unit, raw=-self.raw)

    def cosine(self, other: Direction) -> float:
        return float(self.unit @ other.unit)

    def without(self, other: Direction, kind: str | None = None) -> Direction:
        """This direction with its component along `other` removed, renormalised."""
        residual = self.unit - (self.unit @ other.unit) * other.unit
        if residual.norm() < 1e-6:
            raise InterpError(f"{self.kind} lies along {other.kind}: no component is left")
        unit = residual / residual.norm()
        return replace(self, unit=unit, raw=unit * (self.raw @ unit), kind=kind or f"{self.kind}_specific")

    def meta(self) -> dict[str, Any]:
        keep = asdict(self)
        for key in ("unit", "raw", "offset"):
            keep.pop(key)
        keep["d_model"] = self.d_model
        keep["raw_norm"] = float(self.raw.norm())
        return keep


def unit(vector: torch.Tensor) -> torch.Tensor:
    norm = vector.norm()
    if not torch.isfinite(norm) or norm < 1e-8:
        raise InterpError("cannot normalise a zero or non-finite vector into a direction")
    return (vector / norm).float()


def save(directions: list[Direction], out_dir: Path, extra_tensors: dict[str, torch.Tensor] | None = None) -> None:
    """Write DIR/directions.safetensors and DIR/directions.json, each atomically; a non-finite direction
    is refused before either is written."""
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    tensors: dict[str, torch.Tensor] = dict(extra_tensors or {})
    for d in directions:
        tensors[f"{d.kind}.unit"] = d.unit.contiguous()
        tensors[f"{d.kind}.raw"] = d.raw.contiguous()
        if d.offset is not None:
            tensors[f"{d.kind}.offset"] = d.offset.contiguous()
    meta = {d.kind: d.meta() for d in directions}
    bad = find_non_finite(tensors) or find_non_finite(meta)
    if bad is not None:
        raise InterpError(f"refusing to save directions to {out_dir}: {bad} is not finite (NaN or infinity); "
                          "the activations or the model are broken, nothing was written")
    atomic_save_tensors({k: v.detach().float().clone() for k, v in tensors.items()}, out_dir / "directions.safetensors")
    atomic_write_json(out_dir / "directions.json", meta)


def load(path: Path | str, kind: str | None = None, expect_fingerprint: str | None = None,
         expect_d_model: int | None = None) -> Direction:
    """Load one direction; `path` is the .safetensors file or its directory. Every field and tensor is
    checked, so a corrupt or hand-edited file is refused here, not used as a wrong direction."""
    path = Path(path)
    tensor_path = path / "directions.safetensors" if path.is_dir() else path
    meta_path = tensor_path.with_suffix(".json")
    if not tensor_path.is_file() or not meta_path.is_file():
        raise InterpError(f"{tensor_path}: direction files not found (need .safetensors and .json side by side)")
    try:
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError, TypeError) as err:
        raise InterpError(f"{tensor_path}: corrupt or truncated direction file ({err}); "
                          "make the directions again") from err
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise InterpError(f"{meta_path}: corrupt direction metadata ({err}); make the directions again") from err
    if not isinstance(meta, dict) or not meta:
        raise InterpError(f"{meta_path}: expected an object of directions by kind, got {_describe(meta)}; "
                          "make the directions again")
    kind = kind or next(iter(meta))
    if kind not in meta:
        raise InterpError(f"{tensor_path}: no direction of kind {kind!r} (has: {', '.join(meta)})")
    info = _check_meta(meta[kind], kind, f"{meta_path}: {kind!r}")
    if expect_d_model is not None and info["d_model"] != expect_d_model:
        raise InterpError(f"{tensor_path}: direction has d_model {info['d_model']}, the model has {expect_d_model}")
    if expect_fingerprint is not None and info["model_fingerprint"] != expect_fingerprint:
        raise InterpError(
            f"{tensor_path}: direction was made on another model (fingerprint {info['model_fingerprint'][:12]}, "
            f"this model {expect_fingerprint[:12]}); pass --allow-other-model to use it anyway"
        )
    unit_, raw, offset = _check_tensors(tensors, kind, info, str(tensor_path))
    fields = {k: info[k] for k in ("layer", "position", "kind", "model_fingerprint", "method", "prompt_hashes", "scores")}
    return Direction(unit=unit_, raw=raw, offset=offset, **fields)


_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "layer": int, "position": int, "kind": str, "model_fingerprint": str, "method": str,
    "prompt_hashes": dict, "scores": dict, "d_model": int,
}


def _describe(value: object) -> str:
    return "an empty object" if value == {} else f"a JSON {type(value).__name__}"


def _check_meta(info: object, kind: str, where: str) -> dict[str, Any]:
    if not isinstance(info, dict):
        raise InterpError(f"{where}: expected an object, got {_describe(info)}; make the directions again")
    for key, expected in _META_TYPES.items():
        if key not in info:
            raise InterpError(f"{where}: missing field {key!r}; make the directions again")
        value = info[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InterpError(f"{where}: {key!r} must be {getattr(expected, '__name__', expected)}, "
                              f"got {value!r:.40}; make the directions again")
    if info["kind"] != kind:
        raise InterpError(f"{where}: the entry says kind {info['kind']!r}; make the directions again")
    if info["d_model"] < 1:
        raise InterpError(f"{where}: d_model must be positive, got {info['d_model']}")
    if not all(isinstance(v, str) for v in info["prompt_hashes"].values()):
        raise InterpError(f"{where}: 'prompt_hashes' must map set names to hashes")
    if not all(v is None or isinstance(v, str | int | float) and not isinstance(v, bool) for v in info["scores"].values()):
        raise InterpError(f"{where}: 'scores' must map names to numbers or strings")
    raw_norm = info.get("raw_norm")
    if raw_norm is not None and (not isinstance(raw_norm, int | float) or isinstance(raw_norm, bool)
                                 or not math.isfinite(raw_norm)):
        raise InterpError(f"{where}: 'raw_norm' must be a finite number, got {raw_norm!r:.40}")
    return info


def _check_tensors(tensors: dict[str, torch.Tensor], kind: str, info: dict[str, Any],
                   where: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    d_model = info["d_model"]
    found = {}
    for name in ("unit", "raw", "offset"):
        tensor = tensors.get(f"{kind}.{name}")
        if tensor is None:
            if name == "offset":
                continue
            raise InterpError(f"{where}: no tensor {kind}.{name}; the file is incomplete, make the directions again")
        shape = "[d_model]" if name != "offset" else "[layer, d_model]"
        if (not tensor.is_floating_point() or tensor.ndim != (2 if name == "offset" else 1)
                or tensor.shape[-1] != d_model):
            raise InterpError(f"{where}: {kind}.{name} has shape {list(tensor.shape)} ({tensor.dtype}), expected "
                              f"{shape} floats with d_model {d_model}; make the directions again")
        tensor = tensor.float()
        if not torch.isfinite(tensor).all():
            raise InterpError(f"{where}: {kind}.{name} holds NaN or infinity; make the directions again")
        found[name] = tensor
    norm = float(found["unit"].norm())
    if abs(norm - 1) > 1e-3:
        raise InterpError(f"{where}: {kind}.unit has norm {norm:.6g}, not 1; the file was altered, "
                          "make the directions again")
    raw_norm, actual = info.get("raw_norm"), float(found["raw"].norm())
    if raw_norm is not None and abs(actual - raw_norm) > 1e-3 * max(abs(raw_norm), 1e-6):
        raise InterpError(f"{where}: {kind}.raw has norm {actual:.6g} but directions.json records {raw_norm:.6g}; "
                          "the files do not belong together, make the directions again")
    return found["unit"], found["raw"], found.get("offset")


def mean_difference(mean_a: torch.Tensor, mean_b: torch.Tensor) -> torch.Tensor:
    """[layer, pos, d] candidates: mean of the suppressed set minus mean of the answered set."""
    return (mean_a - mean_b).float()


def stratified_difference(acts, suppressed: str, answered: str, strata: list[str]) -> tuple[torch.Tensor, dict]:
    """Mean difference within each stratum (e.g. language), averaged with weight min(n_suppressed, n_answered).

    Without it a behavioural contrast can be confounded: when a model refuses English politics and
    answers Chinese, "suppressed vs answered" is partly "English vs Chinese". Groups are named
    f"{suppressed}|{stratum}". Returns the [layer, pos, d] difference and the weight of each stratum.
    """
    weights = {s: min(acts.counts.get(f"{suppressed}|{s}", 0), acts.counts.get(f"{answered}|{s}", 0)) for s in strata}
    used = {s: w for s, w in weights.items() if w > 0}
    if not used:
        raise InterpError(f"no stratum ({', '.join(strata)}) has both {suppressed} and {answered} prompts")
    total = sum(used.values())
    diff = sum(w * mean_difference(acts.mean(f"{suppressed}|{s}"), acts.mean(f"{answered}|{s}")) for s, w in used.items())
    return diff / total, weights


def build_candidates(acts, suppressed: str, answered: str, method: str = "mean_diff") -> torch.Tensor:
    """[layer, pos, d] candidates for one contrast. PCA/probe vectors are unit vectors scaled by the mean
    difference's projection on them, so `raw` keeps the residual-stream scale steering needs."""
    if method not in METHODS:
        raise InterpError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    diff = mean_difference(acts.mean(suppressed), acts.mean(answered))
    if method == "mean_diff":
        return diff
    fit = pca_direction if method == "pca" else probe_direction
    a, b = acts.of(suppressed), acts.of(answered)
    out = torch.zeros_like(diff)
    for layer in range(diff.shape[0]):
        for pos in range(diff.shape[1]):
            if diff[layer, pos].norm() < 1e-6:
                continue  # identical inputs in both sets: no direction to fit
            u = unit(fit(a[:, layer, pos], b[:, layer, pos]))
            out[layer, pos] = u * (diff[layer, pos] @ u)
    return out


def pca_direction(acts_a: torch.Tensor, acts_b: torch.Tensor) -> torch.Tensor:
    """First principal axis of paired differences ([n, d] each), signed towards mean(a - b).

    Uncentered (as in representation engineering): centering would subtract the very shift sought.
    """
    n = min(len(acts_a), len(acts_b))
    diffs = (acts_a[:n] - acts_b[:n]).double()
    _, _, vh = torch.linalg.svd(diffs, full_matrices=False)
    first = vh[0]
    return (first * torch.sign(first @ diffs.mean(0))).float()


def probe_direction(acts_a: torch.Tensor, acts_b: torch.Tensor, steps: int = 300, l2: float = 0.03) -> torch.Tensor:
    """Logistic-regression weight separating a (label 1) from b (label 0), on standardised inputs.

    The ridge (l2) matters: with fewer prompts than dimensions the classes are separable and an
    unregularised weight follows a few support points instead of the shift between the groups.
    """
    x = torch.cat([acts_a, acts_b]).double()
    y = torch.cat([torch.ones(len(acts_a)), torch.zeros(len(acts_b))]).double()
    scale = x.std(0) + 1e-6
    xs = (x - x.mean(0)) / scale
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, y) + l2 * (w @ w)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return (w.detach() / scale).float()  # back to the unstandardised residual basis


def random_like(direction: Direction, seed: int) -> Direction:
    """A random unit direction with the same raw norm: the baseline any real effect must beat."""
    g = torch.Generator().manual_seed(seed)
    vector = unit(torch.randn(direction.d_model, generator=g))
    return replace(direction, unit=vector, raw=vector * direction.raw.norm(), kind=f"random_{direction.kind}")

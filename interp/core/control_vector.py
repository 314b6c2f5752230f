"""The direction as a llama.cpp control vector: the GGUF that repeng writes and `--control-vector` loads.

general.architecture = "controlvector", `controlvector.model_hint` (the model family), and one F32 tensor
`direction.{N}` of shape [d_model] per steered layer, added by llama.cpp to the residual stream.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.model import Model

__all__ = ["FILENAME", "control_vector_layer", "steering_vector", "write_control_vector"]

FILENAME = "control-vector.gguf"


def control_vector_layer(direction: Direction, n_layers: int) -> int:
    """llama.cpp's index for the direction's layer.

    interp steers at resid_pre of block L (what block L-1 wrote). llama.cpp adds `direction.N` to the output
    of block N (0-based; `llama_adapter_cvec::apply_to(cur, il)` at the end of block il), and refuses N = 0,
    as repeng's hidden-state indexing does: so interp's layer L is `direction.{L-1}`, and 2 <= L < n_layers (interp's
    steering layers stop at n_layers - 1)."""
    if not 2 <= direction.layer < n_layers:
        raise InterpError(f"a llama.cpp control vector steers the output of blocks 1..{n_layers - 2} here (interp "
                          f"layers 2..{n_layers - 1}); this direction is at layer {direction.layer}: use steering "
                          "hooks (interp evaluate --intervention steer) instead")
    return direction.layer - 1


def steering_vector(direction: Direction, coef: float) -> torch.Tensor:
    """coef x the raw mean difference: what `steer(model, direction, coef)` adds (use_raw)."""
    if not math.isfinite(coef):
        raise InterpError(f"--coef must be a finite number, got {coef}")
    return direction.raw.detach().float().cpu() * coef


def write_control_vector(model: Model, direction: Direction, coef: float, work: Path) -> None:
    import gguf

    layer = control_vector_layer(direction, model.n_layers)
    vector = steering_vector(direction, coef)
    if vector.shape != (model.d_model,) or not bool(torch.isfinite(vector).all()):
        raise InterpError(f"the steering vector must be {model.d_model} finite numbers; got shape "
                          f"{tuple(vector.shape)}: recompute the direction")
    writer = gguf.GGUFWriter(work / FILENAME, arch="controlvector")
    writer.add_string("controlvector.model_hint", str(model.hf.config.model_type))
    writer.add_uint32("controlvector.layer_count", 1)  # how many direction tensors, as repeng writes it
    writer.add_tensor(f"direction.{layer}", vector.numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

"""Two hook backends over the same HF module: TransformerLens `TransformerBridge` and nnsight.

Both expose the same two calls, so nothing above this package knows which one runs:
- `run(batch, read=..., logits=...)`: one forward pass that returns the residual stream at the
  requested layers (index L < n_layers: resid_pre of block L; index n_layers: the final resid_post),
  stops as soon as the last needed layer has run when no logits are wanted, and computes the LM head
  only at the last position when `logits="last"`.
- `generate(batch, max_new_tokens, stopping_criteria)`: greedy generation.
Both apply the model's active `Edit`s (interventions) in every forward pass they make.
"""

from __future__ import annotations

from interp.core.types import Backend, HookedModel

__all__ = ["BACKENDS", "make_backend"]

BACKENDS = ("transformer_lens", "nnsight")


def make_backend(name: str, model: HookedModel) -> Backend:
    if name == "nnsight":
        from interp.core.backends.nnsight import NNsightBackend

        return NNsightBackend(model)
    from interp.core.backends.bridge import BridgeBackend

    return BridgeBackend(model)

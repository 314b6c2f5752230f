"""What both backends share: applying the edit stack at a site, and stopping a forward pass early."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interp.core.types import Edit, HookedModel, Site

__all__ = ["StopForward", "apply_edits", "head_logits"]


class StopForward(Exception):
    """Raised from a hook once the last needed activation is read: the rest of the forward is skipped."""


def apply_edits(edits: Sequence[Edit], site: Site, layer: int, x: torch.Tensor) -> torch.Tensor:
    for edit in edits:
        if edit.site == site and edit.applies(layer):
            x = edit.fn(x)
    return x




def head_logits(model: HookedModel, hidden_last: torch.Tensor) -> torch.Tensor:
    """[batch, vocab] logits from the final (normed) hidden state at the last position."""
    return model.hf.get_output_embeddings()(hidden_last).float()

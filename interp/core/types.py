"""Types every layer shares: the chat batch, the edit a backend applies, the backend protocol, and the
structural view of a model that backends work on (so backends never import the model module)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

__all__ = ["Backend", "ChatBatch", "Edit", "HookedModel", "LogitsMode", "RunResult", "Site"]

Site = Literal["write", "resid_pre"]  # write: every write to the residual (embed, attn out, mlp out)
LogitsMode = Literal["none", "last", "all"]


@dataclass
class ChatBatch:
    input_ids: torch.Tensor  # [batch, seq], left padded
    attention_mask: torch.Tensor  # [batch, seq]

    @property
    def position_ids(self) -> torch.Tensor:  # [batch, seq]: left padding must not shift positions
        return (self.attention_mask.cumsum(-1) - 1).clamp(min=0)

    def to(self, device: torch.device | str) -> ChatBatch:
        return ChatBatch(self.input_ids.to(device), self.attention_mask.to(device))


@dataclass(frozen=True)
class Edit:
    """A pure function applied to residual-stream tensors at `site`, at `layers` (None: all)."""

    site: Site
    fn: Callable[[torch.Tensor], torch.Tensor]
    layers: frozenset[int] | None = None
    key: str | None = None  # names exactly what fn does (e.g. a hash of its vector): edited completions may be cached

    def applies(self, layer: int) -> bool:
        return self.layers is None or layer in self.layers


@dataclass
class RunResult:
    resid: dict[int, torch.Tensor]  # layer -> [batch, seq, d_model]
    logits: torch.Tensor | None  # [batch, vocab] for "last", [batch, seq, vocab] for "all"


class HookedModel(Protocol):
    """What a backend reads from the model it serves."""

    hf: Any
    tokenizer: Any
    name: str
    arch: Any
    edits: list[Edit]

    @property
    def n_layers(self) -> int: ...


class Backend(Protocol):
    name: str

    def run(self, batch: ChatBatch, read: Sequence[int] = (), logits: LogitsMode = "none") -> RunResult: ...

    def generate(self, batch: ChatBatch, max_new_tokens: int, stopping_criteria=None) -> torch.Tensor: ...

    kv_cache: bool  # run_cached works (not on a remote engine, whose caches stay there)

    def run_cached(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                   past: Any = None, last_only: bool = False) -> tuple[torch.Tensor, Any]:
        """Logits [batch, seq or 1, vocab] of input_ids after the cached `past` (None: none), under the active
        edits, and the cache extended by them. attention_mask spans past and input; position_ids the input."""
        ...

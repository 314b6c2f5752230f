"""Two hook backends over the same HF module: TransformerLens `TransformerBridge` and nnsight.

Both expose the same two calls, so nothing above this module knows which one runs:
- `run(batch, read=..., logits=...)`: one forward pass that returns the residual stream at the
  requested layers (index L < n_layers: resid_pre of block L; index n_layers: the final resid_post),
  stops as soon as the last needed layer has run when no logits are wanted, and computes the LM head
  only at the last position when `logits="last"`.
- `generate(batch, max_new_tokens, stopping_criteria)`: greedy generation.
Both apply the model's active `Edit`s (interventions) in every forward pass they make.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import torch

if TYPE_CHECKING:
    from interp.models import ChatBatch, Model

Site = Literal["write", "resid_pre"]  # write: every write to the residual (embed, attn out, mlp out)
LogitsMode = Literal["none", "last", "all"]


@dataclass(frozen=True)
class Edit:
    """A pure function applied to residual-stream tensors at `site`, at `layers` (None: all)."""

    site: Site
    fn: Callable[[torch.Tensor], torch.Tensor]
    layers: frozenset[int] | None = None

    def applies(self, layer: int) -> bool:
        return self.layers is None or layer in self.layers


@dataclass
class RunResult:
    resid: dict[int, torch.Tensor]  # layer -> [batch, seq, d_model]
    logits: torch.Tensor | None  # [batch, vocab] for "last", [batch, seq, vocab] for "all"


class Backend(Protocol):
    name: str

    def run(self, batch: ChatBatch, read: Sequence[int] = (), logits: LogitsMode = "none") -> RunResult: ...

    def generate(self, batch: ChatBatch, max_new_tokens: int, stopping_criteria=None) -> torch.Tensor: ...


class _StopForward(Exception):
    """Raised from a hook once the last needed activation is read: the rest of the forward is skipped."""


def _apply(edits: Sequence[Edit], site: Site, layer: int, x: torch.Tensor) -> torch.Tensor:
    for edit in edits:
        if edit.site == site and edit.applies(layer):
            x = edit.fn(x)
    return x


def patch_bridge_kv_cache() -> None:
    """TransformerLens 4.3 reads `past_key_values=`, transformers 5.24 passes `cache=`.

    Without this, KV-cached generation through a booted bridge attends to nothing after the first
    token and emits garbage. Idempotent; tested by the cached-vs-uncached generation test.
    """
    from transformer_lens.model_bridge.generalized_components import attention

    original = attention.AttentionBridge._update_kv_cache
    if getattr(original, "_interp_patched", False):
        return

    def _update_kv_cache(self, k, v, **kwargs):
        if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
            kwargs["past_key_values"] = kwargs.pop("cache")
        return original(self, k, v, **kwargs)

    _update_kv_cache._interp_patched = True  # type: ignore[attr-defined]
    attention.AttentionBridge._update_kv_cache = _update_kv_cache


def _last_logits(model: Model, hidden_last: torch.Tensor) -> torch.Tensor:
    return model.hf.get_output_embeddings()(hidden_last).float()


class BridgeBackend:
    """TransformerLens 4.x: hooks on the bridge's canonical hook points; forwards run the HF module."""

    name = "transformer_lens"

    def __init__(self, model: Model):
        from transformer_lens.model_bridge import TransformerBridge

        patch_bridge_kv_cache()
        self.model = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.bridge = TransformerBridge.boot_transformers(
                model.name, hf_model=model.hf, tokenizer=model.tokenizer
            )

    def _edit_hooks(self) -> list[tuple[str, Callable]]:
        edits, n = self.model.edits, self.model.n_layers
        if not edits:
            return []

        def at(site: Site, layer: int):
            return lambda x, hook: _apply(edits, site, layer, x)

        hooks = [("embed.hook_out", at("write", -1))]
        for layer in range(n):
            hooks.append((f"blocks.{layer}.hook_in", at("resid_pre", layer)))
            hooks.append((f"blocks.{layer}.attn.hook_out", at("write", layer)))
            hooks.append((f"blocks.{layer}.mlp.hook_out", at("write", layer)))
        return hooks

    def _read_hooks(self, read: Sequence[int], store: dict[int, torch.Tensor], stop_at: int | None):
        n = self.model.n_layers

        def reader(layer: int):
            def hook(x, hook):
                store[layer] = x.detach()
                if layer == stop_at:
                    raise _StopForward
                return x

            return hook

        return [(f"blocks.{layer}.hook_in" if layer < n else f"blocks.{n - 1}.hook_out", reader(layer)) for layer in read]

    @contextmanager
    def hooked(self, extra: list[tuple[str, Callable]] = ()) -> Iterator[None]:
        # Edits run before reads at the same hook point, so reads see the edited stream.
        with self.bridge.hooks(fwd_hooks=self._edit_hooks() + list(extra)):
            yield

    @torch.no_grad()
    def run(self, batch: ChatBatch, read: Sequence[int] = (), logits: LogitsMode = "none") -> RunResult:
        store: dict[int, torch.Tensor] = {}
        stop_at = max(read) if (read and logits == "none") else None
        inputs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
        out = None
        with self.hooked(self._read_hooks(read, store, stop_at)):
            try:
                if logits == "all":
                    out = self.model.hf(**inputs, use_cache=False).logits.float()
                else:
                    body = self.model.hf.base_model(**inputs, use_cache=False)
                    out = _last_logits(self.model, body.last_hidden_state[:, -1]) if logits == "last" else None
            except _StopForward:
                pass
        return RunResult(store, out)

    @torch.no_grad()
    def generate(self, batch: ChatBatch, max_new_tokens: int, stopping_criteria=None) -> torch.Tensor:
        with self.hooked():
            out = self.model.hf.generate(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                stopping_criteria=stopping_criteria,
                pad_token_id=self.model.tokenizer.pad_token_id,
            )
        return out[:, batch.input_ids.shape[1] :]


class NNsightBackend:
    """nnsight 0.8: the same reads and edits expressed as a trace, in execution order."""

    name = "nnsight"

    def __init__(self, model: Model, lm=None, remote: bool | str = False):
        from nnsight import LanguageModel

        self.model = model
        self.remote = remote  # True: NDIF (interp.remote); "local": nnsight's serialise-and-run dry run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.lm = lm if lm is not None else LanguageModel(model.hf, tokenizer=model.tokenizer)

    def _envoy(self, path: str):
        envoy = self.lm
        for part in path.split("."):
            envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
        return envoy

    def _trace_layers(self, read: Sequence[int], store: list, upto: int) -> None:
        """Inside a trace: apply edits and save reads, layer by layer, in execution order."""
        model, edits, arch = self.model, self.model.edits, self.model.arch
        n = model.n_layers
        if any(e.site == "write" for e in edits):
            embed = self._envoy(arch.embed)
            embed.output = _apply(edits, "write", -1, embed.output)
        for layer in range(min(upto + 1, n)):
            block = self._envoy(f"{arch.blocks}.{layer}")
            if any(e.site == "resid_pre" and e.applies(layer) for e in edits):
                block.input = _apply(edits, "resid_pre", layer, block.input)
            if layer in read:
                store.append((layer, block.input.save()))
            if any(e.site == "write" and e.applies(layer) for e in edits):
                for sub in (arch.attn_out, arch.mlp_out):
                    module = self._envoy(f"{arch.blocks}.{layer}.{sub}")
                    module.output = _apply(edits, "write", layer, module.output)
        if n in read:
            last = self._envoy(f"{arch.blocks}.{n - 1}").output
            store.append((n, (last[0] if isinstance(last, tuple) else last).save()))

    @torch.no_grad()
    def run(self, batch: ChatBatch, read: Sequence[int] = (), logits: LogitsMode = "none") -> RunResult:
        n = self.model.n_layers
        upto = max(read) if (read and logits == "none") else n
        store: list = []
        saved: list = []
        inputs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with self.lm.trace(inputs, use_cache=False, remote=self.remote) as tracer:
                self._trace_layers(read, store, upto)
                if logits == "last" and self.remote is True:  # no local weights: the server applies the head
                    saved.append(self.lm.output.logits[:, -1].save())
                elif logits == "last":
                    saved.append(self._envoy(self.model.arch.final_norm).output[:, -1].save())
                    tracer.stop()
                elif logits == "all":
                    saved.append(self.lm.output.logits.save())
                else:
                    tracer.stop()
        out = None
        if logits == "last":
            out = saved[0].float() if self.remote is True else _last_logits(self.model, saved[0])
        elif logits == "all":
            out = saved[0].float()
        return RunResult({layer: value.detach() for layer, value in store}, out)

    @torch.no_grad()
    def generate(self, batch: ChatBatch, max_new_tokens: int, stopping_criteria=None) -> torch.Tensor:
        result: list = []
        inputs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with self.lm.generate(
                max_new_tokens=max_new_tokens,
                do_sample=False,
                stopping_criteria=stopping_criteria,
                pad_token_id=self.model.tokenizer.pad_token_id,
                remote=self.remote,
            ) as tracer:
                with tracer.invoke(inputs):
                    if self.model.edits:
                        for _step in tracer.iter[:]:
                            self._trace_layers((), [], self.model.n_layers)
                with tracer.invoke():  # the result is read after the open step loop has ended
                    result.append(tracer.result.save())
        return result[0][:, batch.input_ids.shape[1] :]


def make_backend(name: str, model: Model) -> Backend:
    return {"transformer_lens": BridgeBackend, "nnsight": NNsightBackend}[name](model)

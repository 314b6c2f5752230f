"""TransformerLens `TransformerBridge` backend: hooks on the bridge's canonical hook points; forwards run
the HF module. Reads stop the forward early; the LM head runs only where logits are asked for."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch

from interp.core.archs import get_submodule
from interp.core.backends.common import StopForward, apply_edits, head_logits
from interp.core.errors import InterpError
from interp.core.types import ChatBatch, HookedModel, LogitsMode, RunResult, Site

__all__ = ["BridgeBackend", "patch_bridge_kv_cache"]


def patch_bridge_kv_cache() -> None:
    """TransformerLens 4.3 reads `past_key_values=`, transformers 5.24 passes `cache=`.

    Without this, KV-cached generation through a booted bridge attends to nothing after the first
    token and emits garbage: in the common attention bridge and in the ones that compute attention
    themselves (DeepSeek-V3/Kimi's multi-head latent attention, GLM-MoE-DSA). Idempotent; tested by
    the cached-vs-uncached generation tests (every architecture row in test_archs).
    """
    from transformer_lens.model_bridge.generalized_components import (
        attention,
        glm_moe_dsa_attention,
        mla_attention,
    )

    for owner, name in ((attention.AttentionBridge, "_update_kv_cache"),
                        (mla_attention.MLAAttentionBridge, "forward"),
                        (glm_moe_dsa_attention.GlmMoeDsaAttentionBridge, "forward")):
        setattr(owner, name, _reading_cache_as_past_key_values(getattr(owner, name)))


def _reading_cache_as_past_key_values(method: Callable) -> Callable:
    if getattr(method, "_interp_patched", False):
        return method

    def patched(self, *args, **kwargs):
        if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
            kwargs["past_key_values"] = kwargs.pop("cache")
        return method(self, *args, **kwargs)

    patched._interp_patched = True  # type: ignore[attr-defined]
    return patched


def _write_sites(model: HookedModel) -> list[list[torch.nn.Module]]:
    """Per block, the HF modules whose outputs the block adds to the residual (the arch row's sites)."""
    arch, sites = model.arch, []
    for layer in range(model.n_layers):
        block = get_submodule(model.hf, f"{arch.blocks}.{layer}")
        found = [get_submodule(block, sub.site) for sub in arch.sublayers(layer)]
        sites.append([getattr(m, "original_component", None) or m for m in found])
    return sites


def _bridge_hook_names(bridge, sites: list[list[torch.nn.Module]], family: str) -> list[list[str]]:
    """The bridge component wrapping each site module: its `hook_out` is the residual write."""
    wrapping = {}
    for name, module in bridge.named_modules(remove_duplicate=False):
        original = getattr(module, "original_component", None)
        if original is not None and "_original_component" not in name and f"{name}.hook_out" in bridge.hook_dict:
            wrapping.setdefault(id(original), name)
    names = []
    for layer, modules in enumerate(sites):
        missing = [i for i, m in enumerate(modules) if id(m) not in wrapping]
        if missing:
            raise InterpError(f"TransformerBridge exposes no hook on block {layer}'s residual writes "
                              f"({type(modules[missing[0]]).__name__}) of {family}: use --backend nnsight")
        names.append([f"{wrapping[id(m)]}.hook_out" for m in modules])
    return names


class BridgeBackend:
    """TransformerLens 4.x: hooks on the bridge's canonical hook points; forwards run the HF module."""

    name = "transformer_lens"

    def __init__(self, model: HookedModel):
        from transformer_lens.model_bridge import TransformerBridge

        patch_bridge_kv_cache()
        self.model = model
        sites = _write_sites(model)  # before booting: the bridge swaps its own components into the HF tree
        config = model.hf.config
        if not getattr(config, "architectures", None):  # a model built from a config names no class
            config.architectures = [type(model.hf).__name__]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.bridge = TransformerBridge.boot_transformers(
                    model.name, hf_model=model.hf, tokenizer=model.tokenizer
                )
            except ValueError as err:
                raise InterpError(f"TransformerBridge does not support {type(model.hf).__name__}: "
                                  f"{str(err).splitlines()[0][:200]}; use --backend nnsight") from err
        self.write_hooks = _bridge_hook_names(self.bridge, sites, type(model.hf).__name__)

    def _edit_hooks(self) -> list[tuple[str, Callable]]:
        edits, n = self.model.edits, self.model.n_layers
        if not edits:
            return []

        def at(site: Site, layer: int):
            return lambda x, hook: apply_edits(edits, site, layer, x)

        hooks = [("embed.hook_out", at("write", -1))]
        for layer in range(n):
            hooks.append((f"blocks.{layer}.hook_in", at("resid_pre", layer)))
            hooks += [(name, at("write", layer)) for name in self.write_hooks[layer]]
        return hooks

    def _read_hooks(self, read: Sequence[int], store: dict[int, torch.Tensor], stop_at: int | None):
        n = self.model.n_layers

        def reader(layer: int):
            def hook(x, hook):
                store[layer] = x.detach()
                if layer == stop_at:
                    raise StopForward
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
                    out = head_logits(self.model, body.last_hidden_state[:, -1]) if logits == "last" else None
            except StopForward:
                pass
        return RunResult(store, out)

    kv_cache = True

    @torch.no_grad()
    def run_cached(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                   past=None, last_only: bool = False) -> tuple[torch.Tensor, object]:
        with self.hooked():
            out = self.model.hf(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                cache=past, use_cache=True, logits_to_keep=1 if last_only else 0)
        return out.logits.float(), out.cache

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

"""nnsight backend: the same reads and edits as the bridge, written as an nnsight trace in execution order
(so the same traces can run remotely on NDIF)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from interp.core.backends.common import apply_edits, head_logits
from interp.core.types import ChatBatch, HookedModel, LogitsMode, RunResult

__all__ = ["NNsightBackend"]


class NNsightBackend:
    """nnsight 0.8: the same reads and edits expressed as a trace, in execution order."""

    name = "nnsight"

    def __init__(self, model: HookedModel, lm=None, remote: bool | str = False):
        from nnsight import LanguageModel

        self.model = model
        self.remote = remote  # True: NDIF (interp.core.remote); "local": nnsight's serialise-and-run dry run
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # nnsight wraps the module in a transformers pipeline, which moves a model to GPU 0 whenever one is
            # visible (a `--device cpu` model too) unless told to keep the model's own device (-1); a model
            # placed by a device map stays where accelerate put it, and the pipeline refuses a device for it
            keep = {} if getattr(model.hf, "hf_device_map", None) else {"device": -1}
            self.lm = lm if lm is not None else LanguageModel(model.hf, tokenizer=model.tokenizer, **keep)

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
            embed.output = apply_edits(edits, "write", -1, embed.output)
        for layer in range(min(upto + 1, n)):
            block = self._envoy(f"{arch.blocks}.{layer}")
            if any(e.site == "resid_pre" and e.applies(layer) for e in edits):
                block.input = apply_edits(edits, "resid_pre", layer, block.input)
            if layer in read:
                store.append((layer, block.input.save()))
            if any(e.site == "write" and e.applies(layer) for e in edits):
                for sub in arch.sublayers(layer):
                    module = self._envoy(f"{arch.blocks}.{layer}.{sub.site}")
                    module.output = apply_edits(edits, "write", layer, module.output)
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
            out = saved[0].float() if self.remote is True else head_logits(self.model, saved[0])
        elif logits == "all":
            out = saved[0].float()
        return RunResult({layer: value.detach() for layer, value in store}, out)

    @property
    def kv_cache(self) -> bool:
        return self.remote is False  # a remote engine keeps its caches

    @torch.no_grad()
    def run_cached(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                   past=None, last_only: bool = False) -> tuple[torch.Tensor, object]:
        saved: list = []
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with self.lm.trace(inputs, cache=past, use_cache=True, logits_to_keep=1 if last_only else 0):
                self._trace_layers((), [], self.model.n_layers)
                saved.append(self.lm.output.save())
        return saved[0].logits.float(), saved[0].cache

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

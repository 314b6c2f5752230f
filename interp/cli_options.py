"""The options the `interp` commands share: typed option annotations, `ModelOptions` (how to load the
model, validated before anything loads) and the `model_options` decorator that gives a command them."""

from __future__ import annotations

import functools
import inspect
import typing
from dataclasses import dataclass, replace
from typing import Annotated

import typer

from interp.core.errors import InterpError

__all__ = ["AffineOpt", "DeviceOpt", "DtypeOpt", "JudgeOpt", "MethodOpt", "ModelOptions", "model_options"]

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="embedded | embedded-0.5b | embedded-1.5b | smollm2-135m | HF dir | .gguf | hub id")]
DtypeOpt = Annotated[str, typer.Option(help="auto (bf16 where the CPU/GPU supports it, else fp32) | bf16 | fp16 | fp32")]
BackendOpt = Annotated[str, typer.Option(help="transformer_lens (TransformerBridge) | nnsight")]
DeviceOpt = Annotated[str, typer.Option(help="cpu | cuda | cuda:N")]
JudgeOpt = Annotated[str, typer.Option(help="markers (offline default: markers, repetition, fact checklist) | model:SPEC "
                                            "(a local chat model with the rubric) | openai:URL[#MODEL] (an OpenAI-compatible "
                                            "endpoint; key from $INTERP_JUDGE_API_KEY)")]
MethodOpt = Annotated[str, typer.Option(help="mean_diff (difference of means) | pca (of paired differences) | probe (logistic regression)")]
AffineOpt = Annotated[bool, typer.Option("--affine", help="Ablate relative to the answered-set mean (affine variant)")]
DeviceMapOpt = Annotated[str | None, typer.Option(
    "--device-map", help="auto: spread the model over every GPU, then CPU, then disk (accelerate); overrides --device")]
RemoteOpt = Annotated[bool, typer.Option(
    "--remote", help="Run every trace on NDIF (needs --backend nnsight, a hub id NDIF serves, NDIF_API_KEY). "
    "Security: nnsight unpickles NDIF's responses (torch.load, weights_only=False), so whoever controls the "
    "NDIF host can run code on this machine; only https://api.ndif.us is used unless --allow-ndif-host")]
NdifHostOpt = Annotated[bool, typer.Option(
    "--allow-ndif-host", help="With --remote: accept a non-default NDIF_HOST (you trust that server to run code here)")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow a hub model's own Python code to run")]
ThinkingOpt = Annotated[str, typer.Option(help="auto (the chat template's default) | on | off: a hybrid reasoning "
                                               "model's enable_thinking switch (Qwen3); recorded in the run")]


@dataclass(frozen=True)
class ModelOptions:
    """How to load the model: the options every model-loading command shares."""

    model: str = "embedded"
    dtype: str = "auto"
    device: str = "cpu"
    backend: str = "transformer_lens"
    device_map: str | None = None
    remote: bool = False
    trust_remote_code: bool = False
    allow_ndif_host: bool = False
    thinking: str = "auto"

    def validate(self) -> None:
        """Every option checked before anything loads or is written (one line per mistake)."""
        from interp.core.backends import BACKENDS
        from interp.core.model import DTYPES, check_device
        from interp.core.thinking_switch import THINKING

        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise InterpError(f"unknown --dtype {self.dtype!r}; choose one of auto, {', '.join(DTYPES)}")
        if self.backend not in BACKENDS:
            raise InterpError(f"unknown --backend {self.backend!r}; choose one of {', '.join(BACKENDS)}")
        if self.device_map not in (None, "auto"):
            raise InterpError(f"--device-map takes only 'auto', not {self.device_map!r}")
        if self.device_map is None:
            check_device(self.device)
        if self.thinking not in THINKING:
            raise InterpError(f"unknown --thinking {self.thinking!r}; choose one of {', '.join(THINKING)}")
        if self.remote:
            from interp.core.remote import check_ready

            if self.backend != "nnsight":
                raise InterpError("--remote runs nnsight traces on NDIF: add --backend nnsight")
            check_ready(self.model, allow_other_host=self.allow_ndif_host)

    def load(self, spec: str | None = None):
        """The model (or, with `spec`, another one on the same settings: a judge model)."""
        from interp.core.model import load_model
        from interp.core.thinking_switch import template_kwargs

        if self.remote and spec is None:
            from interp.core.remote import load_remote

            model = load_remote(self.model, allow_other_host=self.allow_ndif_host)
            model.template_kwargs = template_kwargs(model.tokenizer, self.thinking)
            return model
        return load_model(spec or self.model, dtype=self.dtype, device=self.device, backend=self.backend,
                          trust_remote_code=self.trust_remote_code, device_map=self.device_map,
                          thinking="auto" if spec else self.thinking)  # a judge model keeps its template's default


MODEL_OPTIONS = {"model": ModelOpt, "dtype": DtypeOpt, "device": DeviceOpt, "backend": BackendOpt,
                 "device_map": DeviceMapOpt, "remote": RemoteOpt, "trust_remote_code": TrustOpt,
                 "allow_ndif_host": NdifHostOpt, "thinking": ThinkingOpt}


def model_options(fields: tuple[str, ...] = tuple(MODEL_OPTIONS), **defaults):
    """Give a command the shared model options: typer sees them as its own parameters; the command
    receives them as one `opts: ModelOptions`."""

    def wrap(command):
        hints = typing.get_type_hints(command, include_extras=True)  # the Annotated[..., typer.Option] objects
        own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(command).parameters.values()
               if p.name != "opts"]
        base = ModelOptions(**defaults)
        shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(base, name),
                                    annotation=MODEL_OPTIONS[name]) for name in fields]

        @functools.wraps(command)
        def wrapper(**kwargs):
            opts = replace(base, **{name: kwargs.pop(name) for name in fields})
            opts.validate()
            return command(opts=opts, **kwargs)

        wrapper.__signature__ = inspect.Signature([p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + shared)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
        return wrapper

    return wrap

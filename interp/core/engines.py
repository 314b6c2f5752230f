"""Engines that generate greedy completions for chat prompts: interp's own (transformers, with any active
edits) and vLLM (tensor parallel across GPUs, for evaluation at scale of a model whose edit is already in its
weights, such as an `interp export --format hf` directory).

Both take the same prompts through the same chat template to the same token ids (`interp.core.chat`),
decode greedily with the model's own generation settings (stop tokens, repetition penalty) and return the
text decoded the same way, so a judge grades their completions alike. vLLM is imported only when used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from interp.core import embedded
from interp.core.chat import chat_token_ids
from interp.core.errors import InterpError
from interp.core.generation import complete
from interp.core.model import Model
from interp.core.thinking_switch import template_kwargs

__all__ = ["ENGINES", "VLLM_DTYPES", "Engine", "TransformersEngine", "VLLMEngine", "check_vllm_ready", "decode",
           "export_provenance", "greedy_settings", "vllm_model_dir"]

ENGINES = ("transformers", "vllm")
VLLM_DTYPES = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


class Engine(Protocol):
    name: str

    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        """Greedy completions, in the order given, through the model's chat template."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ran: the model and the engine's settings, for a result file."""
        ...


@dataclass(frozen=True)
class TransformersEngine:
    """interp's own batched greedy generation over a loaded `Model` (its active edits applied)."""

    model: Model
    show_progress: bool = True
    name: str = "transformers"

    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        return complete(self.model, prompts, max_new_tokens, description="generating (transformers)",
                        show_progress=self.show_progress)

    def describe(self) -> dict[str, Any]:
        return self.model.describe() | {"engine": self.name}


def decode(tokenizer: Any, new_token_ids: Sequence[int]) -> str:
    """Generated ids to text exactly as `interp.core.generation.complete` does (special tokens dropped, stripped)."""
    return tokenizer.decode(list(new_token_ids), skip_special_tokens=True).strip()


def greedy_settings(generation_config: Any, tokenizer: Any, max_new_tokens: int) -> dict[str, Any]:
    """vLLM SamplingParams arguments for the decoding `model.generate(do_sample=False)` does: greedy, stopping at
    the generation config's EOS ids, with its repetition penalty (transformers applies it to greedy decoding
    too; vLLM would not unless told)."""
    eos = getattr(generation_config, "eos_token_id", None)
    eos = tokenizer.eos_token_id if eos is None else eos
    stop_ids = sorted({int(i) for i in (eos if isinstance(eos, list | tuple) else [eos]) if i is not None})
    penalty = getattr(generation_config, "repetition_penalty", None)
    return {"temperature": 0.0, "max_tokens": max_new_tokens, "stop_token_ids": stop_ids,
            "repetition_penalty": float(penalty) if penalty is not None else 1.0, "skip_special_tokens": True}


def check_vllm_ready(tensor_parallel: int = 1) -> None:
    """One line, before any work, when vLLM cannot run here: no CUDA GPU (or too few), or no vllm package."""
    import torch

    if tensor_parallel < 1:
        raise InterpError(f"--tensor-parallel must be at least 1, got {tensor_parallel}")
    if not torch.cuda.is_available():
        raise InterpError("--engine vllm needs a CUDA GPU; this machine has none (use --engine transformers)")
    if tensor_parallel > torch.cuda.device_count():
        raise InterpError(f"--tensor-parallel {tensor_parallel} needs {tensor_parallel} GPUs; this machine has "
                          f"{torch.cuda.device_count()}")
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        raise InterpError(f"--engine vllm needs the vllm package ({err}): pip install vllm") from err


def export_provenance(spec: str) -> dict[str, Any] | None:
    """The interp-export.json of a model directory made by `interp export` (checked complete), else None."""
    path = Path(spec).expanduser()
    if not (path / "interp-export.json").is_file():
        return None
    from interp.core.export import check_export

    return check_export(path)


def vllm_model_dir(spec: str) -> dict[str, Any] | None:
    """Check that vLLM can load `spec` (an HF directory or a hub id); return the directory's interp export
    provenance, or None for a model that is not an interp export."""
    if spec in embedded.EMBEDDED or spec.endswith(".gguf"):
        raise InterpError(f"--engine vllm loads an HF directory or hub id, not {spec!r}: export it first "
                          "(interp export --format hf --out DIR) and pass --model DIR")
    path = Path(spec).expanduser()
    provenance = export_provenance(spec)
    if provenance is not None and provenance["format"] != "hf":
        raise InterpError(f"--model {spec} is a {provenance['format']} export; --engine vllm runs an hf export "
                          "(interp export --format hf)")
    if path.exists() and not (path / "config.json").is_file():
        raise InterpError(f"--model {spec} has no config.json: --engine vllm needs an HF model directory")
    return provenance


class VLLMEngine:
    """vLLM over an HF directory or hub id, tensor parallel across `tensor_parallel` GPUs. Prompts go in as
    token ids from interp's own chat formatting (the HF tokenizer of the same directory), never as text that
    vLLM would tokenize (and prefix with a BOS) its own way. The weights load on the first `complete`."""

    name = "vllm"

    def __init__(self, spec: str, tensor_parallel: int = 1, dtype: str = "auto", trust_remote_code: bool = False,
                 thinking: str = "auto"):
        if dtype not in VLLM_DTYPES:
            raise InterpError(f"unknown --dtype {dtype!r} for vLLM; choose one of {', '.join(VLLM_DTYPES)}")
        check_vllm_ready(tensor_parallel)
        self.spec, self.tensor_parallel, self.dtype = spec, tensor_parallel, dtype
        self.trust_remote_code, self.thinking = trust_remote_code, thinking
        self._llm: Any = None

    def _load(self) -> None:
        from transformers import AutoTokenizer, GenerationConfig
        from vllm import LLM

        self.tokenizer = AutoTokenizer.from_pretrained(self.spec, trust_remote_code=self.trust_remote_code)
        self.template_kwargs = template_kwargs(self.tokenizer, self.thinking)  # --thinking, as interp's engine
        try:
            self.generation_config = GenerationConfig.from_pretrained(self.spec)
        except OSError:  # no generation_config.json: transformers' defaults (EOS from the tokenizer)
            self.generation_config = GenerationConfig()
        self._llm = LLM(model=self.spec, tensor_parallel_size=self.tensor_parallel, dtype=VLLM_DTYPES[self.dtype],
                        trust_remote_code=self.trust_remote_code, seed=0)

    def complete(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        if self._llm is None:
            self._load()
        params = SamplingParams(**greedy_settings(self.generation_config, self.tokenizer, max_new_tokens))
        requests = [TokensPrompt(prompt_token_ids=ids) for ids in chat_token_ids(self.tokenizer, prompts, **self.template_kwargs)]
        outputs = self._llm.generate(requests, params, use_tqdm=True)
        return [decode(self.tokenizer, out.outputs[0].token_ids) for out in outputs]

    def describe(self) -> dict[str, Any]:
        from importlib import metadata

        return {"spec": self.spec, "engine": self.name, "tensor_parallel": self.tensor_parallel,
                "dtype": VLLM_DTYPES[self.dtype], "vllm": metadata.version("vllm")}

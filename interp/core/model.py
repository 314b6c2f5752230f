"""Loading models from any spec, and the `Model` wrapper every later stage works with.

Specs: an embedded name (`embedded`, `embedded-0.5b`, `embedded-1.5b`, `smollm2-135m`), a local HF directory, a path
to a `.gguf` file, or a hub id. The wrapper owns the HF module, the tokenizer, the chat formatting
with the post-instruction positions, a weight fingerprint, and the list of active interventions that
the backends apply in every forward pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from interp.core import embedded
from interp.core.archs import Arch, Writer, arch_for, residual_writers
from interp.core.backends import BACKENDS, make_backend
from interp.core.errors import InterpError
from interp.core.types import Backend, ChatBatch, Edit

__all__ = ["DTYPES", "Model", "PROMPT_TOKEN_BUDGET", "check_device", "cpu_has_fast_bf16", "embedded_dir", "find_post_instruction_ids", "fingerprint_dir", "fingerprint_module", "load_model", "prompt_token_budget", "resolve_dtype", "wrap_model"]

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
PROMPT_TOKEN_BUDGET = 2048  # templated tokens; benchmarks/prompt_memory.py measures the peak memory at it


def prompt_token_budget() -> int:
    value = os.environ.get("INTERP_MAX_PROMPT_TOKENS", "")
    if not value:
        return PROMPT_TOKEN_BUDGET
    if not value.isdigit() or int(value) < 16:
        raise InterpError(f"INTERP_MAX_PROMPT_TOKENS must be a whole number of tokens >= 16, not {value!r}")
    return int(value)


@dataclass
class Model:
    hf: Any  # transformers PreTrainedModel
    tokenizer: Any
    spec: str
    name: str
    fingerprint: str
    arch: Arch
    backend_name: str = "transformer_lens"
    edits: list[Edit] = field(default_factory=list)
    # builds the backend on first use; a remote model passes one that sends traces to NDIF
    backend_factory: Callable[[Model], Backend] | None = None
    _backend: Backend | None = None
    writers: list[Writer] = field(default_factory=list)  # embedding, then per block attention's and the MLP's
    _post_ids: list[int] | None = None

    @property
    def n_layers(self) -> int:
        return int(self.hf.config.num_hidden_layers)

    @property
    def d_model(self) -> int:
        return int(self.hf.config.hidden_size)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf.parameters()).dtype

    @property
    def device(self) -> torch.device:
        """Where inputs go: the embedding's device (a device map may spread the rest; meta: offloaded)."""
        device = self.hf.get_input_embeddings().weight.device
        return torch.device("cpu") if device.type == "meta" else device

    @property
    def dtype_name(self) -> str:
        return {v: k for k, v in DTYPES.items()}[self.dtype]

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            factory = self.backend_factory or (lambda m: make_backend(m.backend_name, m))
            self._backend = factory(self)
        return self._backend

    @property
    def backend_started(self) -> bool:
        """True once a backend has wrapped the HF modules (the bridge rewires attention in place)."""
        return self._backend is not None

    @property
    def post_instruction_ids(self) -> list[int]:
        """Template tokens after the user message (Qwen: `<|im_end|>\\n<|im_start|>assistant\\n`)."""
        if self._post_ids is None:
            self._post_ids = find_post_instruction_ids(self.tokenizer)
        return self._post_ids

    @property
    def n_positions(self) -> int:
        return len(self.post_instruction_ids)

    def chat_text(self, prompt: str) -> str:
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    @property
    def max_prompt_tokens(self) -> int:
        """The longest templated prompt accepted: PROMPT_TOKEN_BUDGET ($INTERP_MAX_PROMPT_TOKENS), never more
        than the context less room for generated tokens. Eager attention's memory grows with the square of
        the length (a 32k-token prompt asked ~30 GB on the 0.5B), so longer prompts are refused, not tried."""
        context = int(getattr(self.hf.config, "max_position_embeddings", 0) or 32768)
        return min(prompt_token_budget(), max(context - 256, context // 2))

    def check_prompt_lengths(self, prompts: list[str]) -> None:
        """Refuse, before any work, prompts whose templated length exceeds `max_prompt_tokens`."""
        limit = self.max_prompt_tokens
        lengths = [len(self.tokenizer(self.chat_text(p), add_special_tokens=False)["input_ids"]) for p in prompts]
        too_long = [(n, p) for n, p in zip(lengths, prompts, strict=True) if n > limit]
        if too_long:
            n, prompt = max(too_long, key=lambda item: item[0])
            raise InterpError(f"{len(too_long)} prompt(s) exceed the {limit}-token budget (longest {n} tokens: "
                              f"{prompt[:40]!r}...): shorten them, or raise INTERP_MAX_PROMPT_TOKENS if memory allows")

    def format_chat(self, prompts: list[str]) -> ChatBatch:
        """Tokenize prompts through the chat template, left padded, so the last positions align. A prompt
        over the budget is refused (commands check every prompt before they start; this is the guard)."""
        texts = [self.chat_text(p) for p in prompts]
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        if encoded["input_ids"].shape[1] > self.max_prompt_tokens:
            self.check_prompt_lengths(prompts)
        return ChatBatch(encoded["input_ids"], encoded["attention_mask"]).to(self.device)

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "dtype": self.dtype_name,
            "device": str(self.device),
            "backend": self.backend_name,
        }


def find_post_instruction_ids(tokenizer: Any) -> list[int]:
    """Tokens the template puts after the user's text, found by templating a marker and splitting."""
    if not getattr(tokenizer, "chat_template", None):
        raise InterpError("the tokenizer has no chat template: interp needs an instruction-tuned chat model")
    marker = "interp-marker-7"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True
    )
    suffix = text[text.rindex(marker) + len(marker) :]
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    alone = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    n = 0  # the longest common tail: merges across the boundary must not count
    while n < min(len(full), len(alone)) and full[-1 - n] == alone[-1 - n]:
        n += 1
    if n == 0:
        raise InterpError("could not find the chat template's post-instruction tokens")
    return list(full[-n:])


def resolve_dtype(name: str, device: str) -> torch.dtype:
    if name != "auto":
        if name not in DTYPES:
            raise InterpError(f"unknown dtype {name!r}; choose one of auto, {', '.join(DTYPES)}")
        return DTYPES[name]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def check_device(device: str) -> None:
    """cpu, cuda or cuda:N where that GPU exists; anything else is one line, before any loading."""
    if device == "cpu":
        return
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise InterpError(f"unknown --device {device!r}; use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise InterpError(f"--device {device}: no CUDA GPU is visible to torch here; use --device cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise InterpError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) are visible")


def cpu_has_fast_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformer_lens").setLevel(logging.ERROR)


def _gguf_to_hf_dir(gguf_path: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    model.hf_quantizer = None  # dequantised weights are plain tensors; saving must not re-quantise
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def embedded_dir(key: str, progress: bool = True) -> Path:
    directory = embedded.cache_dir(key)
    if embedded.cache_is_valid(directory):
        return directory
    if progress:
        state = "corrupt, rebuilding" if directory.exists() else "first use"
        print(f"[interp] {embedded.EMBEDDED[key].name}: {state}: dequantising the GGUF once (~50 s for the 0.5B Qwen)...")
    return embedded.build_cache(key, _gguf_to_hf_dir)


def fingerprint_dir(directory: Path) -> str:
    files = sorted(p for p in directory.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf"})
    if not files:
        raise InterpError(f"{directory}: no weight files (*.safetensors) found")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + embedded.sha256_file(path).encode())
    return digest.hexdigest()


def fingerprint_module(module: torch.nn.Module) -> str:
    """For in-memory models (tests): hash of the weights as float32, so dtype does not change it."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _resolve_spec(spec: str) -> tuple[str, str | os.PathLike[str], dict[str, Any], str]:
    """Returns (display name, path or hub id, from_pretrained kwargs, fingerprint or '')."""
    if spec in embedded.EMBEDDED:
        entry = embedded.EMBEDDED[spec]
        return entry.name, embedded_dir(spec), {}, entry.gguf_sha256
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InterpError(f"GGUF file not found: {path}")
        return path.stem, path.parent, {"gguf_file": path.name}, embedded.sha256_file(path)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InterpError(f"{path} is not a Hugging Face model directory (no config.json)")
        return path.name, path, {}, fingerprint_dir(path)
    if spec.count("/") == 1 and not path.exists() and not spec.startswith((".", "/")):
        return spec.split("/")[-1], spec, {}, ""
    known = ", ".join(sorted(embedded.EMBEDDED))
    raise InterpError(f"unknown model {spec!r}: use one of {known}, a local directory, a .gguf file or a hub id")


def load_model(
    spec: str = "embedded",
    dtype: str = "auto",
    device: str = "cpu",
    backend: str = "transformer_lens",
    trust_remote_code: bool = False,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    offload_folder: str | os.PathLike[str] | None = None,
) -> Model:
    """Load any supported model spec and wrap it. The HF module is shared by both backends.

    device_map ("auto", or an explicit map) spreads the model over GPUs, CPU and disk with accelerate;
    max_memory caps each device (e.g. {0: "70GiB", "cpu": "200GiB"}) and offload_folder takes what does not
    fit. `device` is then ignored: inputs go to the embedding's device.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if backend not in BACKENDS:
        raise InterpError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device_map is None:
        check_device(device)
    _quiet_transformers()
    torch_dtype = resolve_dtype(dtype, device)
    name, source, extra, fingerprint = _resolve_spec(spec)
    kwargs = dict(extra, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **{k: v for k, v in kwargs.items() if k != "dtype"})
        placement = {} if device_map is None else {"device_map": device_map, "max_memory": max_memory,
                                                   "offload_folder": offload_folder}
        hf = AutoModelForCausalLM.from_pretrained(source, **placement, **kwargs)
    except OSError as err:
        raise InterpError(f"could not load {spec!r}: {str(err).splitlines()[0]}") from err
    if extra.get("gguf_file"):
        hf.hf_quantizer = None
    if device_map is None:
        hf.to(device)
    return wrap_model(hf, tokenizer, spec=spec, name=name, backend=backend, fingerprint=fingerprint or None)


def wrap_model(
    hf: Any,
    tokenizer: Any,
    spec: str = "in-memory",
    name: str | None = None,
    backend: str = "transformer_lens",
    fingerprint: str | None = None,
    backend_factory: Callable[[Model], Backend] | None = None,
) -> Model:
    """Wrap an already-loaded HF causal LM (tests build tiny ones from a config)."""
    hf.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    arch = arch_for(hf)
    return Model(
        hf=hf,
        tokenizer=tokenizer,
        spec=spec,
        name=name or type(hf).__name__,
        fingerprint=fingerprint or fingerprint_module(hf),
        arch=arch,
        backend_name=backend,
        backend_factory=backend_factory,
        writers=residual_writers(hf, arch),
    )

"""Loading models from any spec, and the `Model` wrapper every later stage works with.

Specs: an embedded name (`embedded`, `embedded-0.5b`, `embedded-1.5b`, `smollm2-135m`), a local HF directory, a path
to a `.gguf` file, or a hub id. The wrapper owns the HF module, the tokenizer, the chat formatting
with the post-instruction positions, a weight fingerprint, and the list of active interventions that
the backends apply in every forward pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import torch

from interp.core import embedded
from interp.core.archs import Arch, Writer, arch_for, residual_writers
from interp.core.backends import BACKENDS, make_backend
from interp.core.chat import chat_text, chat_token_ids, find_post_instruction_ids
from interp.core.errors import InterpError
from interp.core.thinking_switch import template_kwargs
from interp.core.types import Backend, ChatBatch, Edit

__all__ = ["DTYPES", "Model", "PROMPT_TOKEN_BUDGET", "check_device", "cpu_has_fast_bf16", "embedded_dir", "fingerprint_dir", "fingerprint_module", "load_model", "prompt_token_budget", "resolve_dtype", "wrap_model"]

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
    template_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"enable_thinking": False} (--thinking off)

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
            self._post_ids = find_post_instruction_ids(self.tokenizer, **self.template_kwargs)
        return self._post_ids

    @property
    def n_positions(self) -> int:
        return len(self.post_instruction_ids)

    def chat_text(self, prompt: str) -> str:
        return chat_text(self.tokenizer, prompt, **self.template_kwargs)

    @property
    def max_prompt_tokens(self) -> int:
        """The longest templated prompt accepted: PROMPT_TOKEN_BUDGET ($INTERP_MAX_PROMPT_TOKENS), never more
        than the context less room for generated tokens. Eager attention's memory grows with the square of
        the length (a 32k-token prompt asked ~30 GB on the 0.5B), so longer prompts are refused, not tried."""
        context = int(getattr(self.hf.config, "max_position_embeddings", 0) or 32768)
        return min(prompt_token_budget(), max(context - 256, context // 2))

    def prompt_lengths(self, prompts: Sequence[str]) -> list[int]:
        """Templated token count of each prompt."""
        return [len(ids) for ids in chat_token_ids(self.tokenizer, prompts, **self.template_kwargs)]

    def check_prompt_lengths(self, prompts: Sequence[str], lengths: Sequence[int] | None = None) -> None:
        """Refuse, before any work, prompts whose templated length exceeds `max_prompt_tokens` (`lengths`:
        their counts, when the caller has them already)."""
        limit = self.max_prompt_tokens
        lengths = self.prompt_lengths(prompts) if lengths is None else lengths
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


def _resolve_spec(spec: str, trust_remote_code: bool = False) -> tuple[str, str | os.PathLike[str], dict[str, Any], str]:
    """Returns (display name, path or hub id, from_pretrained kwargs, fingerprint or '')."""
    if spec in embedded.EMBEDDED:
        entry = embedded.EMBEDDED[spec]
        return entry.name, embedded_dir(spec), {}, entry.gguf_sha256
    path = Path(spec).expanduser()
    try:
        if path.suffix == ".gguf":
            if not path.is_file():
                raise InterpError(f"GGUF file not found: {path}")
            _check_gguf(path)
            return path.stem, path.parent, {"gguf_file": path.name}, embedded.sha256_file(path)
        if path.is_dir():
            _check_config(path, trust_remote_code)
            return path.name, path, {}, fingerprint_dir(path)
    except OSError as err:
        raise InterpError(f"cannot read {path}: {err.strerror or err}; check the path and its permissions") from err
    if spec.count("/") == 1 and not path.exists() and not spec.startswith((".", "/")):
        return spec.split("/")[-1], spec, _hub_access(spec), ""
    known = ", ".join(sorted(embedded.EMBEDDED))
    raise InterpError(f"unknown model {spec!r}: use one of {known}, a local directory, a .gguf file or a hub id")


def _check_gguf(path: Path) -> None:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"GGUF":
        what = "is empty" if not magic else "does not start with the GGUF magic bytes"
        raise InterpError(f"{path} {what}: not a GGUF model file; check the download (compare its SHA-256)")


def _check_config(path: Path, trust_remote_code: bool) -> None:
    """The config is read here so a broken or unknown one is named in one line, before transformers."""
    from transformers import CONFIG_MAPPING

    config_path = path / "config.json"
    if not config_path.is_file():
        raise InterpError(f"{path} is not a Hugging Face model directory (no config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:
        raise InterpError(f"{config_path}: not valid JSON ({err}); check the download") from err
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if not isinstance(model_type, str):
        raise InterpError(f"{config_path}: no 'model_type' string; is this a Hugging Face model config?")
    if model_type not in CONFIG_MAPPING and not (trust_remote_code and "auto_map" in config):
        import transformers

        raise InterpError(f"{config_path}: model_type {model_type!r} is unknown to transformers "
                          f"{transformers.__version__}; check the name, or upgrade transformers if it is new")


def _hub_access(repo_id: str) -> dict[str, Any]:
    """from_pretrained kwargs for a hub id. Without a network huggingface_hub retries each file for ~50 s
    before failing, so reachability is probed first (a few seconds at most); a model already in the local
    cache then loads offline, anything else fails at once with one line."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or _reachable(constants.ENDPOINT):
        return {}
    if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return {"local_files_only": True}
    raise InterpError(f"cannot reach {constants.ENDPOINT} to download {repo_id!r} (no network?) and it is not in "
                      "the Hugging Face cache; connect, or use a local directory, a .gguf file or an embedded "
                      "model (`interp models`)")


def _reachable(url: str, timeout: float = 3.0) -> bool:
    host = urlsplit(url)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host.hostname, host.port or 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # name resolution ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _load_error(spec: str, err: Exception) -> InterpError:
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    return InterpError(f"could not load {spec!r}: {first} ({type(err).__name__}); check that the model files are "
                       "complete (download them again) or pass another --model")


def load_model(
    spec: str = "embedded",
    dtype: str = "auto",
    device: str = "cpu",
    backend: str = "transformer_lens",
    trust_remote_code: bool = False,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    offload_folder: str | os.PathLike[str] | None = None,
    thinking: str = "auto",
) -> Model:
    """Load any supported model spec and wrap it. The HF module is shared by both backends.

    device_map ("auto", or an explicit map) spreads the model over GPUs, CPU and disk with accelerate;
    max_memory caps each device (e.g. {0: "70GiB", "cpu": "200GiB"}) and offload_folder takes what does not
    fit. `device` is then ignored: inputs go to the embedding's device. `thinking` (auto | on | off) sets a
    hybrid reasoning model's template switch (interp.core.thinking_switch).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if backend not in BACKENDS:
        raise InterpError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if device_map is None:
        check_device(device)
    _quiet_transformers()
    torch_dtype = resolve_dtype(dtype, device)
    name, source, extra, fingerprint = _resolve_spec(spec, trust_remote_code)
    kwargs = dict(extra, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **{k: v for k, v in kwargs.items() if k != "dtype"})
        template_kwargs(tokenizer, thinking)  # a switch the template lacks fails before the weights load
        placement = {} if device_map is None else {"device_map": device_map, "max_memory": max_memory,
                                                   "offload_folder": offload_folder}
        hf = AutoModelForCausalLM.from_pretrained(source, **placement, **kwargs)
    except InterpError:
        raise
    except Exception as err:  # a damaged model file can fail anywhere inside transformers: one line, cause chained
        raise _load_error(spec, err) from err
    if extra.get("gguf_file"):
        hf.hf_quantizer = None
    if device_map is None:
        hf.to(device)
    return wrap_model(hf, tokenizer, spec=spec, name=name, backend=backend, fingerprint=fingerprint or None,
                      thinking=thinking)


def wrap_model(
    hf: Any,
    tokenizer: Any,
    spec: str = "in-memory",
    name: str | None = None,
    backend: str = "transformer_lens",
    fingerprint: str | None = None,
    backend_factory: Callable[[Model], Backend] | None = None,
    thinking: str = "auto",
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
        template_kwargs=template_kwargs(tokenizer, thinking),
    )

"""Architecture knowledge as data: where the residual stream is read and written, per model family.

Adding a family is a new row in ARCHITECTURES, not a new code path. Paths are relative to the HF
`*ForCausalLM` module; `attn_out` and `mlp_out` are relative to one block. Every module named here
writes to the residual stream directly (no post-norm after it), which is what makes directional
ablation and weight orthogonalisation exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.core.errors import InterpError

__all__ = ["Arch", "arch_for", "get_submodule", "gguf_writer_names", "residual_writers"]


@dataclass(frozen=True)
class Arch:
    blocks: str = "model.layers"
    embed: str = "model.embed_tokens"
    attn_out: str = "self_attn.o_proj"
    mlp_out: str = "mlp.down_proj"
    final_norm: str = "model.norm"
    unembed: str = "lm_head"
    # llama.cpp's GGUF names for the same writers: the embedding, then blk.{i}.<attn>, blk.{i}.<mlp>
    gguf_writers: tuple[str, str, str] = ("token_embd", "attn_output", "ffn_down")


_LLAMA_LIKE = Arch()

ARCHITECTURES: dict[str, Arch] = {
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
}


def get_submodule(root: torch.nn.Module, path: str) -> torch.nn.Module:
    try:
        return root.get_submodule(path)
    except AttributeError as err:
        raise InterpError(f"module path {path!r} not found in {type(root).__name__}") from err


def _guess(model: torch.nn.Module) -> Arch:
    """Fallback for unlisted families: the longest ModuleList is the block list."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise InterpError(f"cannot find the transformer blocks of {type(model).__name__}")
    blocks_path, blocks = max(lists, key=lambda item: len(item[1]))
    block_names = {n for n, _ in blocks[0].named_modules()}
    attn = next((n for n in ("self_attn.o_proj", "attn.c_proj", "attention.dense") if n in block_names), None)
    mlp = next((n for n in ("mlp.down_proj", "mlp.c_proj", "mlp.dense_4h_to_h") if n in block_names), None)
    if attn is None or mlp is None:
        raise InterpError(
            f"unknown architecture {type(model).__name__}: add a row to interp.core.archs.ARCHITECTURES"
        )
    return Arch(blocks=blocks_path, attn_out=attn, mlp_out=mlp)


def residual_writers(model: torch.nn.Module, arch: Arch) -> list[torch.nn.Module]:
    """The modules whose outputs are added to the residual stream: embedding, then per block attn, mlp.

    Resolved once, before a backend may wrap the blocks (TransformerBridge replaces them in place).
    """
    blocks = get_submodule(model, arch.blocks)
    writers = [get_submodule(model, arch.embed)]
    for block in blocks:
        writers += [get_submodule(block, arch.attn_out), get_submodule(block, arch.mlp_out)]
    return writers


def gguf_writer_names(arch: Arch, n_layers: int) -> list[str]:
    """GGUF tensor names in the order of residual_writers (weights; biases add `.bias`)."""
    embed, attn, mlp = arch.gguf_writers
    return [embed] + [f"blk.{i}.{name}" for i in range(n_layers) for name in (attn, mlp)]


def arch_for(model: torch.nn.Module) -> Arch:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return ARCHITECTURES.get(model_type) or _guess(model)

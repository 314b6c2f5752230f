"""Architecture knowledge as data: where the residual stream is read and written, per model family.

Adding a family is a new row in ARCHITECTURES, not a new code path. Paths are relative to the HF
`*ForCausalLM` module, or, inside a `Sublayer`, to one block. Each block writes to the residual stream
twice (attention, then MLP); a `Sublayer` names the module whose output the block adds to the residual
(`site`: hooks ablate there, which is exact by construction) and every weight that produces that output
(`weights`: orthogonalisation edits these). A weight is a Linear (weight [d_model, d_in]) or a fused
tensor of routed experts ([n_experts, d_model, d_ff]). Where a norm sits between the weights and the
residual add (Gemma 2/3, GLM-4: `post_norm`) no weight edit equals the hook exactly: see `orthogonalize`.

A row that does not match the model in hand is an error, never a silent skip: an unknown family, a
missing writer path or an MoE block whose experts are not where the row says all raise InterpError.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch

from interp.core.errors import InterpError

__all__ = ["ARCHITECTURES", "Arch", "Sublayer", "Weight", "Writer", "arch_for", "get_submodule", "gguf_writer_names",
           "residual_writers"]


@dataclass(frozen=True)
class Weight:
    """One tensor that writes to the residual: `path` is a Linear module (kind "linear", weight
    [d_model, d_in], bias edited too) or a fused routed-experts parameter (kind "experts",
    [n_experts, d_model, d_ff]: the residual axis is 1, every expert's slice is edited)."""

    path: str
    kind: Literal["linear", "experts"] = "linear"
    gguf: str | None = None  # llama.cpp's name for it, `blk.{i}.<gguf>`; None: GGUF export unsupported

    @property
    def axis(self) -> int:
        return 0 if self.kind == "linear" else 1


@dataclass(frozen=True)
class Sublayer:
    site: str  # the module whose output the block adds to the residual stream
    weights: tuple[Weight, ...]  # every tensor that produces that output
    post_norm: str | None = None  # a norm between `weights` and the residual add: the weight edit is approximate


_O_PROJ = Weight("self_attn.o_proj", gguf="attn_output")
_DOWN = Weight("mlp.down_proj", gguf="ffn_down")
_EXPERTS = Weight("mlp.experts.down_proj", "experts", gguf="ffn_down_exps")
_ATTN = Sublayer("self_attn.o_proj", (_O_PROJ,))


@dataclass(frozen=True)
class Arch:
    blocks: str = "model.layers"
    embed: str = "model.embed_tokens"
    final_norm: str = "model.norm"
    unembed: str = "lm_head"
    attn: Sublayer = _ATTN
    mlp: Sublayer = Sublayer("mlp.down_proj", (_DOWN,))
    moe: Sublayer | None = None  # the MLP of mixture-of-experts blocks
    # which blocks are MoE, a rule read from the config: "all", "first_k_dense_replace" (DeepSeek, GLM-4.5),
    # "decoder_sparse_step" (Qwen MoE); resolved into `moe_blocks` by arch_for
    moe_rule: str = "all"
    moe_blocks: frozenset[int] = frozenset()
    gguf_embed: str | None = "token_embd"

    @property
    def exact(self) -> bool:
        """True when editing the weights equals ablating at the sites (no norm after any writer)."""
        return all(s.post_norm is None for s in (self.attn, self.mlp, self.moe) if s is not None)

    def sublayers(self, layer: int) -> tuple[Sublayer, Sublayer]:
        return self.attn, (self.moe if self.moe is not None and layer in self.moe_blocks else self.mlp)


_LLAMA_LIKE = Arch()
# MoE families: every block's MLP site is the whole `mlp` module, whose output is the routed experts' weighted
# sum plus any (gated) shared expert, so one hook there covers them all and each expert's down projection is a
# writer. Dense blocks of the same family (first_k_dense_replace, mlp_only_layers) keep `mlp.down_proj`.
_MOE_DENSE = Sublayer("mlp", (_DOWN,))
_POST_NORMED = Arch(  # Gemma 2 and 3: a norm after attention and after the MLP, before the residual add
    attn=Sublayer("post_attention_layernorm", (_O_PROJ,), post_norm="post_attention_layernorm"),
    mlp=Sublayer("post_feedforward_layernorm", (_DOWN,), post_norm="post_feedforward_layernorm"),
)

ARCHITECTURES: dict[str, Arch] = {
    "qwen2": _LLAMA_LIKE,
    "qwen3": _LLAMA_LIKE,
    "llama": _LLAMA_LIKE,
    "mistral": _LLAMA_LIKE,
    "phi3": _LLAMA_LIKE,  # fused qkv_proj / gate_up_proj are readers; o_proj and down_proj write
    "qwen2_moe": Arch(mlp=_MOE_DENSE, moe_rule="decoder_sparse_step", moe=Sublayer("mlp", (
        _EXPERTS, Weight("mlp.shared_expert.down_proj", gguf="ffn_down_shexp")))),
    "qwen3_moe": Arch(mlp=_MOE_DENSE, moe_rule="decoder_sparse_step", moe=Sublayer("mlp", (_EXPERTS,))),
    "mixtral": Arch(mlp=_MOE_DENSE, moe=Sublayer("mlp", (_EXPERTS,))),
    # DeepSeek-V3's MLA attention ends in o_proj like the others
    "deepseek_v3": Arch(mlp=_MOE_DENSE, moe_rule="first_k_dense_replace", moe=Sublayer("mlp", (
        _EXPERTS, Weight("mlp.shared_experts.down_proj", gguf="ffn_down_shexp")))),
    "glm4_moe": Arch(mlp=_MOE_DENSE, moe_rule="first_k_dense_replace", moe=Sublayer("mlp", (
        _EXPERTS, Weight("mlp.shared_experts.down_proj", gguf="ffn_down_shexp")))),
    "glm4": Arch(  # GLM-4-0414: sandwich norms, like Gemma
        attn=Sublayer("post_self_attn_layernorm", (_O_PROJ,), post_norm="post_self_attn_layernorm"),
        mlp=Sublayer("post_mlp_layernorm", (_DOWN,), post_norm="post_mlp_layernorm"),
    ),
    "gemma2": _POST_NORMED,
    "gemma3_text": _POST_NORMED,
}


def _moe_blocks(config, rule: str) -> frozenset[int]:
    n = int(config.num_hidden_layers)
    if rule == "all":
        return frozenset(range(n))
    if rule == "first_k_dense_replace":
        return frozenset(range(int(config.first_k_dense_replace), n))
    if rule == "decoder_sparse_step":  # the rule transformers' Qwen2/3-MoE decoder layers apply
        step, dense = int(config.decoder_sparse_step), set(getattr(config, "mlp_only_layers", None) or ())
        return frozenset(i for i in range(n) if i not in dense and config.num_experts > 0 and (i + 1) % step == 0)
    raise InterpError(f"unknown MoE layer rule {rule!r}")


@dataclass(frozen=True, eq=False)
class Writer:
    """A resolved residual writer: `weight` has its residual (d_model) axis at `axis` (-1: the embedding).
    `post_norm` is the norm module between it and the residual add, if any."""

    name: str
    weight: torch.nn.Parameter
    bias: torch.nn.Parameter | None
    axis: int
    gguf: str | None
    post_norm: torch.nn.Module | None = None


def get_submodule(root: torch.nn.Module, path: str) -> torch.nn.Module:
    try:
        return root.get_submodule(path)
    except AttributeError as err:
        raise InterpError(f"module path {path!r} not found in {type(root).__name__}") from err


def _resolve(arch: Arch, layer: int, block: torch.nn.Module, sub: Sublayer,
             d_model: int, missing: list[str]) -> list[Writer]:
    prefix = f"{arch.blocks}.{layer}"
    post_norm = None
    if sub.post_norm is not None:
        try:
            post_norm = block.get_submodule(sub.post_norm)
        except AttributeError:
            missing.append(f"{prefix}.{sub.post_norm}")
    writers = []
    for spec in sub.weights:
        parent, _, leaf = spec.path.rpartition(".")
        try:
            owner = block.get_submodule(spec.path) if spec.kind == "linear" else block.get_submodule(parent)
        except AttributeError:
            missing.append(f"{prefix}.{spec.path}")
            continue
        weight = owner.weight if spec.kind == "linear" else getattr(owner, leaf, None)
        expected_ndim = 2 if spec.kind == "linear" else 3
        if not isinstance(weight, torch.Tensor) or weight.ndim != expected_ndim or weight.shape[spec.axis] != d_model:
            shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
            missing.append(f"{prefix}.{spec.path} (shape {shape}, expected residual axis {spec.axis} = {d_model})")
            continue
        bias = getattr(owner, "bias", None) if spec.kind == "linear" else getattr(owner, f"{leaf}_bias", None)
        writers.append(Writer(f"{prefix}.{spec.path}", weight, bias, spec.axis, spec.gguf, post_norm))
    return writers


def residual_writers(model: torch.nn.Module, arch: Arch) -> list[Writer]:
    """Every tensor that writes to the residual stream: the embedding, then per block attention's, then the
    MLP's (every routed expert tensor and shared expert). A declared path that is missing raises, naming it.

    Resolved once, before a backend may wrap the blocks (TransformerBridge replaces them in place).
    """
    blocks = get_submodule(model, arch.blocks)
    embed = get_submodule(model, arch.embed)
    d_model = int(embed.weight.shape[-1])
    writers = [Writer(arch.embed, embed.weight, None, -1, arch.gguf_embed)]
    missing: list[str] = []
    for layer, block in enumerate(blocks):
        for sub in arch.sublayers(layer):
            try:
                block.get_submodule(sub.site)
            except AttributeError:
                missing.append(f"{arch.blocks}.{layer}.{sub.site} (residual write site)")
            writers += _resolve(arch, layer, block, sub, d_model, missing)
    if missing:
        raise InterpError(f"{type(model).__name__} does not match its architecture row: missing "
                          f"{', '.join(missing)}; fix the row in interp.core.archs.ARCHITECTURES")
    return writers


def gguf_writer_names(arch: Arch, n_layers: int) -> list[str]:
    """GGUF tensor names in the order of residual_writers (weights; biases add `.bias`)."""
    names = [arch.gguf_embed]
    for layer in range(n_layers):
        names += [f"blk.{layer}.{w.gguf}" if w.gguf else None for sub in arch.sublayers(layer) for w in sub.weights]
    if None in names:
        raise InterpError("GGUF export has no llama.cpp tensor names for this architecture: export --format hf")
    return names


def arch_for(model: torch.nn.Module) -> Arch:
    """The family's row, with its config-dependent parts (which blocks are MoE) resolved."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    arch = ARCHITECTURES.get(model_type)
    if arch is None:
        known = ", ".join(sorted(ARCHITECTURES))
        raise InterpError(f"unknown architecture {model_type!r} ({type(model).__name__}): interp knows {known}; "
                          "add a row to interp.core.archs.ARCHITECTURES naming its residual writers")
    if arch.moe is not None:
        arch = dataclasses.replace(arch, moe_blocks=_moe_blocks(config, arch.moe_rule))
    return arch

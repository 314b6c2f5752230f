"""Converting an HF model (in memory, or a saved HF directory) into a GGUF that llama.cpp and `transformers`
(`gguf_file=`) load: a compact version of llama.cpp's convert_hf_to_gguf.py for the families both load.

Keys and tensor names are llama.cpp's: the architecture's hyperparameters, a byte-level BPE tokenizer
(tokenizer.ggml.model "gpt2": tokens, token types, merges, special ids, chat template, read the way
`gguf.SpecialVocab` reads them) and every tensor under `gguf.TensorNameMap`'s name. Matrices are F16, 1-D
tensors (norms, biases) F32, as llama.cpp writes an F16 model; nothing is quantised. A tensor with no
llama.cpp name is an error, never dropped.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from interp.core.errors import InterpError

__all__ = ["GGUF_FAMILIES", "GgufFamily", "check_convertible", "convert_hf_dir", "gguf_tokenizer_pre",
           "require_convertible", "write_gguf"]


@dataclass(frozen=True)
class GgufFamily:
    """How llama.cpp stores one HF family: its GGUF architecture, and whether q/k rows are permuted
    (llama.cpp's LlamaModel interleaves the rotary halves; transformers' loader undoes it)."""

    arch: str
    permute_qk: bool = False


# the families that both llama.cpp and transformers' GGUF loader handle (Mistral is stored as llama, as
# llama.cpp's converter does); the rest of interp.core.archs is refused rather than written half-right
GGUF_FAMILIES: dict[str, GgufFamily] = {
    "qwen2": GgufFamily("qwen2"),
    "qwen3": GgufFamily("qwen3"),
    "llama": GgufFamily("llama", permute_qk=True),
    "mistral": GgufFamily("llama", permute_qk=True),
}

# pre-tokenizer splits as they appear in tokenizer.json, by llama.cpp's tokenizer.ggml.pre name
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_PRE_BY_SPLIT = {_QWEN2_SPLIT: "qwen2", _LLAMA3_SPLIT: "llama-bpe"}
_F16_MAX = float(np.finfo(np.float16).max)


def check_convertible(model_type: str | None) -> GgufFamily:
    """The family's GGUF row, or a one-line refusal naming the families that convert."""
    family = GGUF_FAMILIES.get(model_type or "")
    if family is None:
        raise InterpError(f"--format gguf converts {', '.join(GGUF_FAMILIES)} models from HF weights, not "
                          f"{model_type!r}: load it from a .gguf (rewritten in place) or export --format hf")
    return family


def require_convertible(hf: torch.nn.Module, tokenizer) -> GgufFamily:
    """Everything `write_gguf` would refuse (family, rope scaling, tokenizer), checked before any work."""
    family = check_convertible(getattr(hf.config, "model_type", None))
    _rope(hf.config)
    gguf_tokenizer_pre(tokenizer)
    return family


def write_gguf(hf: torch.nn.Module, tokenizer, path: Path, name: str) -> Path:
    """PATH: the model's weights, hyperparameters and tokenizer as one F16 GGUF."""
    import gguf

    config = hf.config
    family = require_convertible(hf, tokenizer)
    vocab_size = int(hf.get_input_embeddings().weight.shape[0])
    tensors = dict(_tensors(hf, family))  # [llama.cpp name] -> array; every refusal comes before the file
    writer = gguf.GGUFWriter(path, arch=family.arch)
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name)
        _add_hyperparameters(writer, config, family, vocab_size)
        _add_tokenizer(writer, tokenizer, config, vocab_size)
        for tensor_name, array in tensors.items():
            writer.add_tensor(tensor_name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    except BaseException:
        writer.close()
        Path(path).unlink(missing_ok=True)  # never a half-written GGUF
        raise
    return path


def convert_hf_dir(source: Path, path: Path) -> Path:
    """PATH: the GGUF of a saved HF directory (e.g. `interp export --format hf`'s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(source)
    config_file = source / "config.json"
    if not config_file.is_file():
        raise InterpError(f"{source} has no config.json: pass an HF model directory")
    check_convertible(json.loads(config_file.read_text(encoding="utf-8")).get("model_type"))
    hf = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    return write_gguf(hf, AutoTokenizer.from_pretrained(source), path, source.name)


def _add_hyperparameters(writer, config, family: GgufFamily, vocab_size: int) -> None:
    import gguf

    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(heads)
    writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or heads))
    writer.add_rope_freq_base(float(_rope(config).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(vocab_size)
    if head_dim != config.hidden_size // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    if family.arch == "llama":
        writer.add_rope_dimension_count(head_dim)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _rope(config) -> dict:
    """The rotary settings, from transformers 5's `rope_parameters` or the older `rope_theta`/`rope_scaling`."""
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    params.setdefault("rope_theta", getattr(config, "rope_theta", 10000.0))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind not in ("default", "llama3"):
        raise InterpError(f"--format gguf does not convert rope scaling {kind!r}: export --format hf instead")
    return params | {"rope_type": kind}


def _rope_factors(hf: torch.nn.Module) -> np.ndarray | None:
    """Llama 3's frequency scaling as llama.cpp's rope_freqs tensor: default / scaled inverse frequency,
    taken from the model's own rotary module, so it is what transformers computes."""
    if _rope(hf.config)["rope_type"] != "llama3":
        return None
    rotary = next(m for name, m in hf.named_modules() if name.endswith("rotary_emb"))
    scaled = rotary.inv_freq.detach().double().cpu()  # [head_dim / 2]
    dim = 2 * scaled.numel()
    base = float(_rope(hf.config)["rope_theta"])
    default = 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    return (default / scaled).float().numpy()


def _tensors(hf: torch.nn.Module, family: GgufFamily) -> Iterator[tuple[str, np.ndarray]]:
    import gguf

    config = hf.config
    arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == family.arch)
    names = gguf.get_tensor_name_map(arch, int(config.num_hidden_layers))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    factors = _rope_factors(hf)
    if factors is not None:
        yield "rope_freqs.weight", factors
    for hf_name, tensor in hf.state_dict().items():
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue  # recomputed by the loader; a tied head is the embedding, which llama.cpp stores once
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise InterpError(f"tensor {hf_name} has no llama.cpp name in GGUF architecture {family.arch!r}: "
                              "export --format hf instead")
        data = tensor.detach().float().cpu()
        if family.permute_qk and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute(data, heads)
        elif family.permute_qk and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute(data, kv_heads)
        yield gguf_name, _stored(data)


def _permute(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """llama.cpp's LlamaModel.permute: each head's rotary halves interleaved (weight [heads * head_dim, ...])."""
    halves = weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])  # [heads, 2, head_dim / 2, ...]
    return halves.swapaxes(1, 2).reshape(weight.shape)


def _stored(data: torch.Tensor) -> np.ndarray:
    """F32 for 1-D tensors (and any matrix F16 cannot hold), F16 for the rest, as llama.cpp's F16 files."""
    array = data.numpy()
    if array.ndim <= 1 or float(np.abs(array).max(initial=0.0)) > _F16_MAX:
        return array.astype(np.float32)
    return array.astype(np.float16)


def gguf_tokenizer_pre(tokenizer) -> str:
    """llama.cpp's tokenizer.ggml.pre name for a byte-level BPE tokenizer, read from its pre-tokenizer.

    llama.cpp's converter recognises a tokenizer by hashing its output on a test text; the splits it
    names are these, so matching the pre-tokenizer itself gives the same name without the hash table."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre])
    kinds = [step.get("type") for step in steps]
    if model.get("type") != "BPE" or "ByteLevel" not in kinds:
        raise InterpError("--format gguf converts byte-level BPE tokenizers (Qwen, Llama 3, SmolLM), not this "
                          f"{model.get('type')} tokenizer: export --format hf instead")
    if not model.get("merges"):  # llama.cpp refuses a BPE vocabulary without them
        raise InterpError("the tokenizer has no BPE merges, which a GGUF vocabulary needs: export --format hf instead")
    byte_level = steps[kinds.index("ByteLevel")]
    if kinds == ["ByteLevel"] and byte_level.get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and byte_level.get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not byte_level.get("use_regex", True):
        name = _PRE_BY_SPLIT.get((steps[0].get("pattern") or {}).get("Regex"))
        if name is not None:
            return name
    raise InterpError(f"--format gguf does not know this tokenizer's pre-tokenizer ({' + '.join(map(str, kinds))}); "
                      f"it knows gpt-2, smollm, {', '.join(_PRE_BY_SPLIT.values())}: export --format hf instead")


def _vocab(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens and llama.cpp token types by id, as convert_hf_to_gguf's get_vocab_base: ids the tokenizer
    lacks (embedding rows past its vocabulary) become unused [PAD<id>] tokens."""
    import gguf

    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    if by_id and max(by_id) >= vocab_size:
        raise InterpError(f"the tokenizer has id {max(by_id)} but the embedding only {vocab_size} rows")
    added = tokenizer.added_tokens_decoder  # {id: AddedToken}
    tokens, types = [], []
    for index in range(vocab_size):
        token = by_id.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            content = added[index].content
            looks_special = content.startswith(("<|", "<｜")) and content.endswith(("|>", "｜>"))
            tokens.append(content)
            special = added[index].special or looks_special
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def _add_tokenizer(writer, tokenizer, config, vocab_size: int) -> None:
    import gguf

    pre = gguf_tokenizer_pre(tokenizer)
    tokens, types = _vocab(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # merges, special ids (tokenizer first, then config.json), add_bos/eos and the chat template, read from
    # the saved files exactly as llama.cpp's converter reads them
    with tempfile.TemporaryDirectory(prefix="interp-gguf-tok-") as scratch:
        tokenizer.save_pretrained(scratch)
        config.to_json_file(str(Path(scratch) / "config.json"))
        special = gguf.SpecialVocab(scratch, load_merges=True, n_vocab=vocab_size)
    special.add_to_gguf(writer, quiet=True)


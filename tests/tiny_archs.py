"""Tiny random-weight models of every family in interp.core.archs, built from their config classes: seconds, offline.

Weights are drawn wider than the HF default (std 0.1, norm gains around 1 +- 0.5) so that an edit moves the
logits visibly and a post-norm's gain is not the identity that a fresh init gives."""

from __future__ import annotations

import functools
import tempfile

import torch
import transformers as tf
from tiny import byte_tokenizer

from interp.core.model import Model, wrap_model

MOE = dict(num_experts_per_tok=2, moe_intermediate_size=32)
DEEPSEEK_LIKE = dict(MOE, n_routed_experts=4, n_shared_experts=1, first_k_dense_replace=1, n_group=2, topk_group=1)
FAMILIES: dict[str, tuple[str, str, dict]] = {  # family: (config class, model class, config overrides)
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM",
                  dict(MOE, num_experts=4, shared_expert_intermediate_size=48, mlp_only_layers=[0])),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", dict(MOE, num_experts=4)),
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM", dict(
        DEEPSEEK_LIKE, num_key_value_heads=4, kv_lora_rank=16, q_lora_rank=24, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16)),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", dict(num_local_experts=4, num_experts_per_tok=2)),
    "glm4": ("Glm4Config", "Glm4ForCausalLM", {}),
    "glm4_moe": ("Glm4MoeConfig", "Glm4MoeForCausalLM", DEEPSEEK_LIKE),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(head_dim=16)),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(head_dim=16)),
}
POST_NORMED = {"glm4", "gemma2", "gemma3_text"}


@functools.cache
def saved_tokenizer_dir() -> str:
    """The byte tokenizer saved once: TransformerBridge reloads a tokenizer by its name_or_path (Gemma)."""
    directory = tempfile.mkdtemp(prefix="interp-tiny-tok-")
    byte_tokenizer().save_pretrained(directory)
    return directory


def tiny_hf(family: str, seed: int = 0, layers: int = 2):
    config_name, model_name, extra = FAMILIES[family]
    tok = tf.AutoTokenizer.from_pretrained(saved_tokenizer_dir())
    torch.manual_seed(seed)
    sizes = dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=False,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.pad_token_id,
    )
    config = getattr(tf, config_name)(**(sizes | extra))
    config._attn_implementation = "eager"
    config.architectures = [model_name]
    hf = getattr(tf, model_name)(config).float().eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.copy_(torch.rand_like(p) - 0.5 if family.startswith("gemma") else 0.5 + torch.rand_like(p))
            elif "bias" not in name:
                p.normal_(0, 0.1)
    return hf, tok


def tiny_family(family: str, backend: str = "nnsight", seed: int = 0) -> Model:
    hf, tok = tiny_hf(family, seed)
    return wrap_model(hf, tok, spec=f"tiny-{family}", backend=backend)

"""Architecture rows on tiny random models of every listed family: every residual writer is found and edited,
and hook ablation equals weight orthogonalisation (exactly, except behind a post-norm, where the gap is measured)."""

import copy

import pytest
import torch
from test_math import random_direction
from tiny_archs import FAMILIES, POST_NORMED, tiny_family, tiny_hf

from interp.core.archs import ARCHITECTURES, gguf_writer_names
from interp.core.errors import InterpError
from interp.core.interventions import ablate, orthogonalize, project_out
from interp.core.model import wrap_model

PROMPTS = ["hello there", "What happened in 1989?", "说中文", "a much longer prompt with several words in it"]
# the writers of an MoE block (block 0 of qwen2_moe, deepseek_v3 and glm4_moe is dense, of the others MoE)
BLOCK_1 = {
    "qwen2_moe": ["self_attn.o_proj", "mlp.experts.down_proj", "mlp.shared_expert.down_proj"],
    "qwen3_moe": ["self_attn.o_proj", "mlp.experts.down_proj"],
    "deepseek_v3": ["self_attn.o_proj", "mlp.experts.down_proj", "mlp.shared_experts.down_proj"],
    "mixtral": ["self_attn.o_proj", "mlp.experts.down_proj"],
    "glm4_moe": ["self_attn.o_proj", "mlp.experts.down_proj", "mlp.shared_experts.down_proj"],
}


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return request.param


def test_every_family_has_a_row():
    assert set(FAMILIES) <= set(ARCHITECTURES)


def test_row_names_every_residual_writer(family):
    model = tiny_family(family)
    names = [w.name for w in model.writers]
    dense = ["self_attn.o_proj", "mlp.down_proj"]
    assert names[0] == "model.embed_tokens"
    block_0 = dense if family in ("qwen2_moe", "deepseek_v3", "glm4_moe") else BLOCK_1.get(family, dense)
    expected = [f"model.layers.{i}.{p}" for i, ps in enumerate([block_0, BLOCK_1.get(family, dense)]) for p in ps]
    assert names[1:] == expected
    for writer in model.writers:
        if writer.weight.ndim == 3:  # a fused tensor holds every routed expert
            assert writer.weight.shape[:2] == (4, model.d_model)
    assert model.arch.exact == (family not in POST_NORMED)


def _last_logits(model, batch):
    with torch.no_grad():
        out = model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids)
    return out.logits[:, -1].float()


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_hook_ablation_equals_orthogonalisation(family, backend):
    model = tiny_family(family, backend)
    clone = wrap_model(copy.deepcopy(model.hf), model.tokenizer)
    naive = wrap_model(copy.deepcopy(model.hf), model.tokenizer)
    d = random_direction(model)
    batch = model.format_chat(PROMPTS)
    base = model.backend.run(batch, logits="last").logits
    with ablate(model, d):
        hooked = model.backend.run(batch, logits="last").logits
    if family in POST_NORMED:
        with pytest.warns(UserWarning, match="post-norm"):
            result = orthogonalize(clone, d)
    else:
        result = orthogonalize(clone, d)
    assert len(result.edited) == result.declared == len(model.writers)
    edited = _last_logits(clone, batch)
    assert (hooked - base).abs().max() > 1e-2  # the edit matters, so agreement below means something
    gap = (edited - hooked).abs().max().item()
    if family not in POST_NORMED:
        assert result.exact
        torch.testing.assert_close(edited, hooked, atol=1e-4, rtol=0)
        return
    # Behind a post-norm the weight edit still leaves no component along u in the residual stream...
    assert set(result.approximate) == {w.name for w in clone.writers[1:]}
    hidden = clone.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                      position_ids=batch.position_ids, output_hidden_states=True).hidden_states
    mask = batch.attention_mask.bool()
    for layer in range(clone.n_layers):  # the last hidden state is after the final norm
        assert (hidden[layer][mask].float() @ d.unit).abs().max() < 1e-4, layer
    # ...but is not the hook's function: it differs by a per-token scale, which moves the logits measurably,
    # and less than projecting u out of o_proj/down_proj as if there were no norm
    assert 1e-3 < gap < 0.5 * (hooked - base).abs().max().item(), gap
    u = d.unit
    with torch.no_grad():
        for writer in naive.writers:
            w = writer.weight
            w.copy_(project_out(w, u) if writer.axis == -1 else w - torch.outer(u, u @ w))
    assert gap < 0.5 * (_last_logits(naive, batch) - hooked).abs().max().item()


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_cached_generation_and_scoring_equal_uncached_ones(family, backend):
    """The bridge once let DeepSeek-V3's latent attention ignore its KV cache (transformers passes `cache=`):
    generation turned to garbage after the first token, and cached continuation scores were off by nats."""
    from interp.core.measure import shared_prefix_scores, token_scores

    model = tiny_family(family, backend)
    batch = model.format_chat(PROMPTS[:2])
    cached = model.backend.generate(batch, max_new_tokens=6)
    with torch.no_grad():
        plain = model.hf.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=6,
                                  do_sample=False, use_cache=False, pad_token_id=model.tokenizer.pad_token_id)
    assert torch.equal(cached, plain[:, batch.input_ids.shape[1] :])
    tok = model.tokenizer
    heads = [tok(model.chat_text(p), add_special_tokens=False)["input_ids"] for p in PROMPTS[:2]]
    tails = [[tok(c, add_special_tokens=False)["input_ids"] for c in ("yes", "no, never")]] * 2
    shared = shared_prefix_scores(model, heads, tails)
    whole = [token_scores(model, [(h, t) for t in group]) for h, group in zip(heads, tails, strict=True)]
    torch.testing.assert_close(torch.tensor([n for s in shared for n, _ in s]),
                               torch.tensor([n for s in whole for n, _ in s]), atol=1e-4, rtol=1e-5)


def test_every_routed_expert_is_edited():
    model = tiny_family("qwen2_moe")
    d = random_direction(model)
    fused = model.hf.model.layers[1].mlp.experts.down_proj
    before = fused.detach().clone()
    orthogonalize(model, d)
    for expert in range(fused.shape[0]):
        assert not torch.equal(fused[expert], before[expert]), expert
        assert (d.unit @ fused[expert]).abs().max() < 1e-5, expert  # no expert writes u any more


def test_unknown_architecture_is_an_error_naming_the_fix():
    from tiny import byte_tokenizer
    from transformers import OlmoConfig, OlmoForCausalLM

    tok = byte_tokenizer()
    hf = OlmoForCausalLM(OlmoConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                    num_attention_heads=2, pad_token_id=tok.pad_token_id))
    with pytest.raises(InterpError, match="olmo.*add a row"):
        wrap_model(hf, tok)


def test_moe_block_without_its_experts_is_an_error_naming_them():
    hf, tok = tiny_hf("deepseek_v3")
    del hf.model.layers[1].mlp.shared_experts
    hf.model.layers[1].mlp.experts = torch.nn.Identity()
    with pytest.raises(InterpError, match=r"model\.layers\.1\.mlp\.experts\.down_proj.*shared_experts\.down_proj"):
        wrap_model(hf, tok)


def test_dense_block_where_the_row_expects_experts_is_an_error():
    hf, tok = tiny_hf("qwen2_moe")
    hf.config.mlp_only_layers = []  # the row now expects experts in block 0, which is dense
    with pytest.raises(InterpError, match=r"model\.layers\.0\.mlp\.experts\.down_proj"):
        wrap_model(hf, tok)


def test_gguf_names_follow_the_writers():
    model = tiny_family("deepseek_v3")
    names = gguf_writer_names(model.arch, model.n_layers)
    assert names == ["token_embd", "blk.0.attn_output", "blk.0.ffn_down",
                     "blk.1.attn_output", "blk.1.ffn_down_exps", "blk.1.ffn_down_shexp"]
    assert len(names) == len(model.writers)


def test_tied_embedding_is_untied_before_the_edit():
    hf, tok = tiny_hf("gemma2")
    hf.config.tie_word_embeddings = True
    hf.tie_weights()
    assert hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()
    model = wrap_model(hf, tok)
    head = hf.lm_head.weight.detach().clone()
    with pytest.warns(UserWarning):
        orthogonalize(model, random_direction(model))
    assert torch.equal(hf.lm_head.weight, head) and not hf.config.tie_word_embeddings


def test_a_family_the_bridge_cannot_boot_is_an_error_naming_the_other_backend(monkeypatch):
    from transformer_lens.model_bridge import TransformerBridge

    def unsupported(*args, **kwargs):
        raise ValueError("Could not determine supported architecture from config. Available architectures: [...]")

    monkeypatch.setattr(TransformerBridge, "boot_transformers", unsupported)
    model = tiny_family("qwen3_moe", "transformer_lens")
    with pytest.raises(InterpError, match="TransformerBridge does not support Qwen3MoeForCausalLM.*--backend nnsight"):
        model.backend.run(model.format_chat(["hello"]), logits="last")


def test_tied_gemma_exports_with_its_own_head(tmp_path):
    from transformers import AutoModelForCausalLM

    from interp.core.export import export_hf

    hf, tok = tiny_hf("gemma3_text")
    hf.config.tie_word_embeddings = True
    hf.tie_weights()
    model = wrap_model(hf, tok)
    with pytest.warns(UserWarning, match="post-norm"):
        export_hf(model, random_direction(model), tmp_path / "export")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "export", dtype=torch.float32)
    batch = model.format_chat(PROMPTS)
    assert not torch.equal(reloaded.lm_head.weight, reloaded.model.embed_tokens.weight)
    torch.testing.assert_close(_last_logits(wrap_model(reloaded, tok), batch), _last_logits(model, batch), atol=1e-5, rtol=0)

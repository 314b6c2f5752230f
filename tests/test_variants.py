"""Ablation variants on tiny random models: where the hook and the weight edit must agree (kernel, k directions,
biprojection: exactly, pre-norm), and where they must not (norm-preserving; behind a post-norm) with the property
that still holds there."""

import copy

import pytest
import torch
from test_math import random_direction
from tiny import tiny_model
from tiny_archs import tiny_family

from interp.core.directions import Direction, unit
from interp.core.errors import InterpError
from interp.core.interventions import ablate, orthogonalize, project_out
from interp.core.model import wrap_model
from interp.core.variants import Kernel, Variant, ablate_variant, biproject, orthogonalize_variant

PROMPTS = ["hello there", "What happened in 1989?", "说中文", "a much longer prompt with several words in it"]
KERNEL = Kernel(peak_layer=1, width=1.5, peak=1.2, floor=0.4)  # 4 blocks: two strengths in between, block 3 at 0


def _clone(model):
    return wrap_model(copy.deepcopy(model.hf), model.tokenizer)  # a plain HF copy, no hooks


def _forward(model, batch, **kwargs):
    with torch.no_grad():
        return model.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids, **kwargs)


def _hooked_logits(model, batch, variant):
    with ablate_variant(model, variant):
        logits = model.backend.run(batch, logits="all").logits
    assert not model.edits  # removed in finally
    return logits


def _directions(model, k):
    return tuple(random_direction(model, seed=seed, kind=f"d{seed}") for seed in range(k))


def _vectors(weight, axis):
    """The [d_model] vectors a writer writes: a Linear's columns, a token's embedding row, each expert's column."""
    return weight.detach().float().movedim(axis, -1)


def _assert_agree(model, variant, batch):
    base = model.backend.run(batch, logits="all").logits
    hooked = _hooked_logits(model, batch, variant)
    clone = _clone(model)
    result = orthogonalize_variant(clone, variant)
    mask = batch.attention_mask.bool()
    assert (hooked - base)[mask].abs().max() > 1e-2  # the edit matters, so agreement below means something
    torch.testing.assert_close(_forward(clone, batch).logits.float()[mask], hooked[mask], atol=1e-4, rtol=0)
    assert result.exact
    return result


def test_kernel_falls_linearly_from_its_peak_to_its_floor_and_is_zero_beyond():
    k = Kernel(peak_layer=3.5, width=2.0, peak=1.3, floor=0.2)
    assert k.strength(3.5) == k.peak
    assert k.strength(5.5) == pytest.approx(k.floor) == k.strength(1.5)
    assert k.strength(4.5) == pytest.approx((k.peak + k.floor) / 2)  # linear: halfway in distance, halfway in strength
    assert k.strength(6) == 0.0 == k.strength(1)
    assert Kernel(peak_layer=2, width=0).strength(2) == 1.0


@pytest.mark.parametrize("bad", [dict(width=-1), dict(peak=float("nan")), dict(floor=float("inf"))])
def test_a_malformed_kernel_is_a_one_line_error(bad):
    with pytest.raises(InterpError, match="kernel"):
        Kernel(**(dict(peak_layer=1, width=1) | bad))


@pytest.mark.parametrize("kernel", [Kernel(peak_layer=9, width=1), Kernel(peak_layer=1, width=1, peak=0, floor=0)])
def test_a_kernel_that_misses_the_model_is_refused(kernel):
    model = tiny_model("qwen2", "nnsight", layers=4)
    variant = Variant(random_direction(model), kernel=kernel)
    with pytest.raises(InterpError, match="peak_layer|strength 0"), ablate_variant(model, variant):
        pass
    with pytest.raises(InterpError, match="peak_layer|strength 0"):
        orthogonalize_variant(model, variant)


@pytest.mark.parametrize("family,backend", [("qwen2", "nnsight"), ("llama", "transformer_lens"),
                                            ("qwen2_moe", "nnsight")])
def test_kernel_hook_equals_kernel_weight_edit(family, backend):
    if family == "qwen2_moe":
        model = tiny_family(family, backend)  # 2 blocks: block 1 at the peak, block 0 on the slope
        kernel = Kernel(peak_layer=1, width=2, peak=1.0, floor=0.3)
    else:
        model, kernel = tiny_model(family, backend, layers=4), KERNEL
    variant = Variant(random_direction(model), kernel=kernel)
    result = _assert_agree(model, variant, model.format_chat(PROMPTS))
    layers = [0] + [int(name.split(".")[2]) for name in result.edited[1:]]  # model.layers.L.<writer>
    assert set(layers) == {layer for layer in range(model.n_layers) if kernel.strength(layer)}


def test_the_plain_variant_is_the_plain_path():
    model = tiny_model("qwen2", "nnsight")
    d = random_direction(model)
    batch = model.format_chat(PROMPTS)
    with ablate(model, d):
        plain = model.backend.run(batch, logits="all").logits
    torch.testing.assert_close(_hooked_logits(model, batch, Variant(d)), plain, atol=1e-5, rtol=0)
    one, other = _clone(model), _clone(model)
    orthogonalize(one, d)
    orthogonalize_variant(other, Variant(d))
    for a, b in zip(one.writers, other.writers, strict=True):
        torch.testing.assert_close(a.weight, b.weight, atol=1e-6, rtol=0)


@pytest.mark.parametrize("family,backend", [("qwen2", "transformer_lens"), ("mixtral", "nnsight")])
def test_k_directions_hook_equals_weight_edit_and_removes_the_subspace(family, backend):
    model = tiny_family(family, backend) if family == "mixtral" else tiny_model(family, backend)
    ds = _directions(model, 3)
    assert abs(ds[0].cosine(ds[1])) > 1e-3  # not orthogonal as given: the basis must orthonormalise them
    variant = Variant(ds)
    batch = model.format_chat(PROMPTS)
    _assert_agree(model, variant, batch)
    with ablate_variant(model, variant):
        resid = model.backend.run(batch, read=range(model.n_layers + 1)).resid
    units = torch.stack([d.unit for d in ds], dim=1)  # [d_model, 3]
    for layer, x in resid.items():
        assert (x.float() @ units).abs().max() < 1e-4, layer


def test_the_basis_is_ablating_its_orthonormal_vectors_one_by_one():
    """Cross-check against plain ablate: for orthonormal q_i, the product of (I - q_i q_i^T) is I - Q Q^T."""
    model = tiny_model("qwen2", "nnsight")
    variant = Variant(_directions(model, 3))
    q = variant.basis()
    torch.testing.assert_close(q.T @ q, torch.eye(3), atol=1e-5, rtol=0)
    batch = model.format_chat(PROMPTS)
    ones = [Direction(column, column, 1, -1, f"q{i}", model.fingerprint) for i, column in enumerate(q.T)]
    with ablate(model, ones[0]), ablate(model, ones[1]), ablate(model, ones[2]):
        sequential = model.backend.run(batch, logits="all").logits
    torch.testing.assert_close(_hooked_logits(model, batch, variant), sequential, atol=1e-4, rtol=0)


def test_rank_deficient_directions_are_a_one_line_error():
    model = tiny_model("qwen2", "nnsight")
    a, b = _directions(model, 2)
    spanned = Direction(unit(a.unit - 2 * b.unit), a.raw, 1, -1, "mix", model.fingerprint)
    for directions in [(a, b, spanned), (a, a)]:
        with pytest.raises(InterpError, match="linearly dependent") as err:
            orthogonalize_variant(_clone(model), Variant(directions))
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("family", ["qwen2", "mixtral"])
def test_norm_preserving_edit_keeps_every_written_norm_and_never_writes_u(family):
    model = tiny_family(family) if family == "mixtral" else tiny_model(family, "nnsight")
    d = random_direction(model)
    before = {w.name: (_vectors(w.weight, w.axis).clone(), w.bias) for w in model.writers}
    result = orthogonalize_variant(model, Variant(d, norm_preserving=True))
    assert result.approximate == result.edited[1:]  # only the embedding is the hook's function
    for writer in model.writers:
        old, new = before[writer.name][0], _vectors(writer.weight, writer.axis)
        assert not torch.allclose(new, old)
        torch.testing.assert_close(new.norm(dim=-1), old.norm(dim=-1), rtol=1e-5, atol=1e-6)
        assert (new @ d.unit).abs().max() < 1e-5, writer.name
    batch = model.format_chat(PROMPTS)
    hidden = _forward(model, batch, output_hidden_states=True).hidden_states
    mask = batch.attention_mask.bool()
    for layer in range(model.n_layers):  # the last hidden state is after the final norm
        assert (hidden[layer][mask].float() @ d.unit).abs().max() < 1e-4, layer


def test_norm_preserving_hook_agrees_with_the_weight_edit_on_the_embedding_only():
    """Each embedding write is one row, so rescaling the write is rescaling the row; a Linear's write mixes
    columns that the weight edit rescales by different factors, which no function of the write can do."""
    model = tiny_model("qwen2", "nnsight")
    d = random_direction(model)
    variant = Variant(d, norm_preserving=True)
    batch = model.format_chat(PROMPTS)
    base = model.backend.run(batch, read=[0], logits="all")
    with ablate_variant(model, variant):
        hooked = model.backend.run(batch, read=range(model.n_layers + 1), logits="all")
    clone = _clone(model)
    orthogonalize_variant(clone, variant)
    out = _forward(clone, batch, output_hidden_states=True)
    mask = batch.attention_mask.bool()
    assert (hooked.resid[0] - base.resid[0])[mask].abs().max() > 1e-3
    torch.testing.assert_close(out.hidden_states[0][mask], hooked.resid[0][mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(hooked.resid[0].norm(dim=-1), base.resid[0].norm(dim=-1), atol=1e-4, rtol=1e-5)
    gap = (out.logits.float() - hooked.logits)[mask].abs().max()
    assert gap > 1e-3, gap  # the writes after the embedding differ...
    for layer in range(model.n_layers):  # ...but neither writes u
        assert (hooked.resid[layer][mask] @ d.unit).abs().max() < 1e-4, layer
        assert (out.hidden_states[layer][mask] @ d.unit).abs().max() < 1e-4, layer


def test_biprojected_direction_ignores_the_harmless_mean_and_hook_equals_weight_edit():
    model = tiny_model("qwen2", "nnsight")
    d = random_direction(model, layer=1)
    batch = model.format_chat(PROMPTS)
    harmless = model.backend.run(batch, read=[d.layer]).resid[d.layer][:, -1].float().mean(0)  # [d_model]
    bi = biproject(d, harmless)
    assert bi.kind == "censorship_biprojected" and bi.offset is None
    assert abs(float(bi.unit @ harmless)) < 1e-4 * float(harmless.norm())
    assert d.cosine(bi) < 0.999  # the harmless mean had a component along d, now gone
    torch.testing.assert_close(project_out(harmless, bi.unit), harmless, atol=1e-5, rtol=0)
    _assert_agree(model, Variant(bi), batch)
    per_block = torch.randn(model.n_layers, model.d_model)
    per_block[d.layer] = harmless
    stored = Direction(d.unit, d.raw, d.layer, -1, d.kind, model.fingerprint, offset=per_block)
    torch.testing.assert_close(biproject(stored).unit, bi.unit, atol=0, rtol=0)  # the offset's own block
    with pytest.raises(InterpError, match="lies along"):
        biproject(d, 3 * d.unit)
    with pytest.raises(InterpError, match="harmless mean"):
        biproject(d)


def test_an_affine_direction_is_refused_not_silently_ablated_to_zero():
    model = tiny_model("qwen2", "nnsight")
    d = random_direction(model)
    affine = Direction(d.unit, d.raw, d.layer, -1, d.kind, model.fingerprint, offset=torch.zeros(model.d_model))
    with pytest.raises(InterpError, match="affine"), ablate_variant(model, Variant(affine)):
        pass


def test_hook_keys_name_the_vectors_kernel_and_norm_exactly():
    model = tiny_model("qwen2", "nnsight", layers=4)
    a, b = _directions(model, 2)
    variants = [Variant(a), Variant(-a), Variant(b), Variant((a, b)), Variant((b, a)), Variant(a, norm_preserving=True),
                Variant(a, kernel=KERNEL), Variant(a, kernel=Kernel(peak_layer=1, width=1.5, peak=1.2, floor=0.5))]

    def keys(variant):
        with ablate_variant(model, variant):
            return tuple(e.key for e in model.edits)

    assert len({keys(v) for v in variants}) == len(variants)
    assert keys(Variant(a, kernel=KERNEL)) == keys(Variant(a, kernel=Kernel(**vars(KERNEL))))


@pytest.mark.parametrize("family", ["gemma2", "glm4"])
def test_behind_a_post_norm_the_edit_is_oblique_and_the_hooks_up_to_a_per_token_scale(family):
    model = tiny_family(family)
    block = model.hf.model.layers[1]
    writer = next(w for w in model.writers if w.name.endswith("layers.1.self_attn.o_proj"))
    original = copy.deepcopy(block.self_attn.o_proj)
    kernel = Kernel(peak_layer=1, width=1, peak=0.9, floor=0.5)
    variant = Variant(_directions(model, 2), kernel=kernel)
    q = variant.basis()
    with pytest.warns(UserWarning, match="post-norm"):
        result = orthogonalize_variant(model, variant)
    assert set(result.approximate) == {w.name for w in model.writers[1:]}
    x = torch.randn(6, writer.weight.shape[1])  # [token, d_in]
    with torch.no_grad():
        y = writer.post_norm(original(x)).float()  # the unedited write
        hook = y - kernel.strength(1) * (y @ q) @ q.T
        edited = writer.post_norm(block.self_attn.o_proj(x)).float()
    cosine = torch.nn.functional.cosine_similarity(edited, hook, dim=-1)
    torch.testing.assert_close(cosine, torch.ones(6), atol=1e-5, rtol=0)
    assert (edited - hook).abs().max() > 1e-3  # a per-token scale apart, not equal


@pytest.mark.parametrize("norm_preserving", [False, True])
def test_behind_a_post_norm_full_strength_still_never_writes_the_subspace(norm_preserving):
    model = tiny_family("gemma2")
    ds = _directions(model, 2)
    with pytest.warns(UserWarning, match="post-norm"):
        orthogonalize_variant(model, Variant(ds, norm_preserving=norm_preserving))
    batch = model.format_chat(PROMPTS)
    hidden = _forward(model, batch, output_hidden_states=True).hidden_states
    mask = batch.attention_mask.bool()
    units = torch.stack([d.unit for d in ds], dim=1)
    for layer in range(model.n_layers):
        assert (hidden[layer][mask].float() @ units).abs().max() < 1e-4, layer

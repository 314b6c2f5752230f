import copy

import pytest
import torch

from interp.core import activations, directions
from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.interventions import ablate, orthogonalize, project_out, steer
from interp.core.model import wrap_model


def random_direction(model, layer=1, seed=0, kind="censorship"):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(model.d_model, generator=g) * 3
    return Direction(directions.unit(raw), raw, layer, -1, kind, model.fingerprint)


def test_project_out_removes_component_and_is_idempotent():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        d = int(torch.randint(2, 64, (1,), generator=g))
        u = directions.unit(torch.randn(d, generator=g))
        x = torch.randn(5, 7, d, generator=g) * 10
        once = project_out(x, u)
        assert (once @ u).abs().max() < 1e-4
        torch.testing.assert_close(project_out(once, u), once, atol=1e-5, rtol=0)


def test_ablation_leaves_no_component_at_any_layer(tiny, prompts):
    d = random_direction(tiny)
    batch = tiny.format_chat(prompts)
    with ablate(tiny, d):
        resid = tiny.backend.run(batch, read=range(tiny.n_layers + 1)).resid
    assert not tiny.edits  # removed in finally
    for layer, x in resid.items():
        assert (x.float() @ d.unit).abs().max() < 1e-4, layer


def test_orthogonalized_weights_equal_hook_ablation(tiny, prompts):
    d = random_direction(tiny)
    batch = tiny.format_chat(prompts)
    with ablate(tiny, d):
        hooked = tiny.backend.run(batch, logits="all").logits
    clone = wrap_model(copy.deepcopy(tiny.hf), tiny.tokenizer)  # a plain HF copy, no hooks
    orthogonalize(clone, d)
    with torch.no_grad():
        edited = clone.hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                          position_ids=batch.position_ids).logits.float()
    mask = batch.attention_mask.bool()
    torch.testing.assert_close(edited[mask], hooked[mask], atol=1e-4, rtol=0)


def test_steering_adds_the_vector_at_its_layer_only(tiny, prompts):
    d = random_direction(tiny, layer=1)
    batch = tiny.format_chat(prompts)
    base = tiny.backend.run(batch, read=[0, 1]).resid
    with steer(tiny, d, coef=2.0):
        steered = tiny.backend.run(batch, read=[0, 1]).resid
    torch.testing.assert_close(steered[0], base[0])
    torch.testing.assert_close(steered[1], base[1] + 2.0 * d.raw, atol=1e-4, rtol=0)


def test_mean_difference_equals_hand_computation(tiny, prompts):
    groups = ["a", "b", "a", "b"]
    acts = activations.collect(tiny, prompts, groups=groups, keep=True, show_progress=False)
    hand = acts.per_prompt[[0, 2]].double().mean(0) - acts.per_prompt[[1, 3]].double().mean(0)
    got = directions.mean_difference(acts.mean("a"), acts.mean("b"))
    torch.testing.assert_close(got, hand.float(), atol=1e-5, rtol=0)
    assert acts.per_prompt.shape == (4, tiny.n_layers + 1, tiny.n_positions, tiny.d_model)


def test_direction_round_trips_bit_for_bit(tiny, tmp_path):
    d = random_direction(tiny)
    candidates = torch.randn(3, 2, tiny.d_model)
    view = Direction(directions.unit(candidates[1, 0]), candidates[1, 0], 1, -2, "refusal", tiny.fingerprint)
    directions.save([d, view], tmp_path, {"refusal.candidates": candidates})  # views share memory
    back = directions.load(tmp_path, "censorship", expect_fingerprint=tiny.fingerprint, expect_d_model=tiny.d_model)
    assert torch.equal(back.unit, d.unit) and torch.equal(back.raw, d.raw)
    assert (back.layer, back.position, back.kind) == (d.layer, d.position, d.kind)


def test_direction_for_another_model_is_refused(tiny, tmp_path):
    directions.save([random_direction(tiny)], tmp_path)
    with pytest.raises(InterpError, match="another model"):
        directions.load(tmp_path, expect_fingerprint="0" * 64)
    with pytest.raises(InterpError, match="d_model"):
        directions.load(tmp_path, expect_d_model=tiny.d_model + 1)


def test_truncated_direction_file_is_a_clear_error(tiny, tmp_path):
    directions.save([random_direction(tiny)], tmp_path)
    path = tmp_path / "directions.safetensors"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(InterpError, match="corrupt or truncated"):
        directions.load(tmp_path)


def test_zero_difference_cannot_become_a_direction():
    with pytest.raises(InterpError, match="zero"):
        directions.unit(torch.zeros(8))


@pytest.mark.parametrize("method", ["pca", "probe"])
def test_pca_and_probe_candidates_point_along_a_planted_difference(tiny, method):
    from interp.core.activations import Activations

    g = torch.Generator().manual_seed(0)
    planted = directions.unit(torch.randn(16, generator=g))
    noise = torch.randn(200, 2, 1, 16, generator=g)
    shifted = noise[:100] + 3 * planted
    shifted[:, 0] = noise[100:, 0]  # layer 0: the very same inputs in both groups
    per_prompt = torch.cat([shifted, noise[100:]])
    groups = ["a"] * 100 + ["b"] * 100
    sums = {k: per_prompt[[i for i, x in enumerate(groups) if x == k]].double().sum(0) for k in "ab"}
    acts = Activations(sums, {"a": 100, "b": 100}, per_prompt, groups)
    cands = directions.build_candidates(acts, "a", "b", method)
    assert float(directions.unit(cands[1, 0]) @ planted) > 0.9
    assert cands[0, 0].norm() < 1e-6


def test_affine_ablation_sets_the_component_to_the_answered_mean(tiny, prompts):
    d = random_direction(tiny)
    offset = 0.7 * d.unit + torch.randn(tiny.d_model) * 0.01
    affine = Direction(d.unit, d.raw, d.layer, -1, "censorship", tiny.fingerprint, offset=offset)
    batch = tiny.format_chat(prompts)
    with ablate(tiny, affine):
        resid = tiny.backend.run(batch, read=range(tiny.n_layers)).resid
    for x in resid.values():
        torch.testing.assert_close(x.float() @ d.unit, torch.full(x.shape[:2], float(offset @ d.unit)), atol=1e-4, rtol=0)


def test_affine_ablation_uses_each_blocks_own_mean(tiny, prompts):
    """A [layer, d_model] offset sets each block's component to that block's mean, not one layer's."""
    d = random_direction(tiny)
    targets = torch.linspace(-2.0, 3.0, tiny.n_layers)
    offsets = targets[:, None] * d.unit + torch.randn(tiny.n_layers, tiny.d_model) * 0.01
    affine = Direction(d.unit, d.raw, d.layer, -1, "censorship", tiny.fingerprint, offset=offsets)
    batch = tiny.format_chat(prompts)
    with ablate(tiny, affine):
        resid = tiny.backend.run(batch, read=range(tiny.n_layers)).resid
    for layer, x in resid.items():
        want = float(offsets[layer] @ d.unit)
        torch.testing.assert_close(x.float() @ d.unit, torch.full(x.shape[:2], want), atol=1e-4, rtol=0)


@pytest.mark.parametrize("shape", [(2, None), (1, 7)])
def test_an_offset_of_the_wrong_shape_is_a_one_line_error(tiny, shape):
    """Neither one target nor one per block (here 2 rows for a deeper model), or the wrong width."""
    d = random_direction(tiny)
    rows, width = shape
    offset = torch.zeros(rows, width or tiny.d_model)
    with pytest.raises(InterpError, match="offset has shape"), ablate(tiny, Direction(
            d.unit, d.raw, d.layer, -1, "censorship", tiny.fingerprint, offset=offset)):
        pass


def test_stratified_difference_removes_a_language_confound():
    """Suppressed prompts mostly English, answered mostly Chinese: pooling finds 'language', strata do not."""
    from interp.core.activations import Activations

    d = 8
    lang_axis, behaviour_axis = torch.eye(d)[0], torch.eye(d)[1]
    rows = {("s", "en"): 9, ("s", "zh"): 1, ("a", "en"): 1, ("a", "zh"): 9}
    per_prompt, groups = [], []
    for (group, lang), n in rows.items():
        vector = (5 * lang_axis if lang == "en" else 0 * lang_axis) + (behaviour_axis if group == "s" else 0)
        per_prompt += [vector.expand(1, 1, d)] * n
        groups += [f"{group}|{lang}"] * n
    stacked = torch.stack(per_prompt)
    sums = {g: stacked[[i for i, x in enumerate(groups) if x == g]].double().sum(0) for g in set(groups)}
    acts = Activations(sums, {g: groups.count(g) for g in set(groups)}, stacked, groups)
    diff, weights = directions.stratified_difference(acts, "s", "a", ["en", "zh"])
    torch.testing.assert_close(diff[0, 0], behaviour_axis)
    assert weights == {"en": 1, "zh": 1}
    pooled = acts.merged({g: g[0] for g in groups})
    assert float(directions.unit(directions.mean_difference(pooled.mean("s"), pooled.mean("a"))[0, 0]) @ lang_axis) > 0.9


def test_streamed_activation_chunks_equal_kept_activations(tmp_path):
    from tiny import tiny_model

    model = tiny_model("llama")
    texts = ["a", "a longer prompt here", "mid size", "z", "another one of some length"]
    kept = activations.collect(model, texts, keep=True, batch_size=2, show_progress=False,
                               stream_to=tmp_path / "stream")
    assert len(list((tmp_path / "stream").glob("chunk-*.safetensors"))) == 3
    assert torch.equal(activations.read_stream(tmp_path / "stream"), kept.per_prompt)

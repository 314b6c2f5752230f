import pytest
import torch
from tiny import tiny_model


def hf_hidden(model, batch):
    with torch.no_grad():
        out = model.hf(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask,
            position_ids=batch.position_ids, output_hidden_states=True,
        )
    return out.hidden_states, out.logits


def test_post_instruction_tokens_found_from_template(tiny):
    text = tiny.tokenizer.decode(tiny.post_instruction_ids)
    assert text == "<|im_end|>\n<|im_start|>assistant\n"


def test_backend_residuals_match_hf_hidden_states(tiny, prompts):
    batch = tiny.format_chat(prompts)
    reference = tiny_model(tiny.spec.split("-")[1], "transformer_lens")  # same seed, fresh, unhooked
    hidden, logits = hf_hidden(reference, batch)
    n = tiny.n_layers
    result = tiny.backend.run(batch, read=range(n + 1), logits="last")
    mask = batch.attention_mask.bool()
    for layer in range(n):
        torch.testing.assert_close(result.resid[layer][mask], hidden[layer][mask], atol=1e-4, rtol=0)
    final_norm = reference.hf.get_submodule(reference.arch.final_norm)
    torch.testing.assert_close(final_norm(result.resid[n]), hidden[n], atol=1e-4, rtol=0)
    torch.testing.assert_close(result.logits, logits[:, -1].float(), atol=1e-4, rtol=0)


def test_early_stop_returns_only_needed_layers(tiny, prompts):
    batch = tiny.format_chat(prompts)
    result = tiny.backend.run(batch, read=[0, 1], logits="none")
    assert sorted(result.resid) == [0, 1] and result.logits is None


def test_generation_with_cache_equals_without(tiny, prompts):
    batch = tiny.format_chat(prompts)
    new = tiny.backend.generate(batch, max_new_tokens=6)
    with torch.no_grad():
        plain = tiny.hf.generate(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=6,
            do_sample=False, use_cache=False, pad_token_id=tiny.tokenizer.pad_token_id,
        )[:, batch.input_ids.shape[1]:]
    assert new.shape[0] == len(prompts)
    assert torch.equal(new[:, : plain.shape[1]], plain[:, : new.shape[1]])


def test_continuations_sharing_a_cached_context_score_as_if_run_whole(tiny, prompts):
    from test_math import random_direction

    from interp.core.interventions import ablate
    from interp.core.measure import shared_prefix_scores, token_scores

    tok = tiny.tokenizer
    heads = [tok(tiny.chat_text(p), add_special_tokens=False)["input_ids"] for p in prompts[:3]]
    greedy = tiny.backend.generate(tiny.format_chat(prompts[:1]), max_new_tokens=4)[0].tolist()
    tails = [[greedy, tok("Bee", add_special_tokens=False)["input_ids"], []],
             [tok("a longer answer", add_special_tokens=False)["input_ids"]],
             [tok("q", add_special_tokens=False)["input_ids"], tok("rr", add_special_tokens=False)["input_ids"]]]
    runs = []
    for edit in (None, random_direction(tiny)):
        with ablate(tiny, edit) if edit else torch.no_grad():
            whole = [token_scores(tiny, [(h, t) for t in group]) for h, group in zip(heads, tails, strict=True)]
            shared = shared_prefix_scores(tiny, heads, tails, rows_per_pass=2)  # rows of one context split over passes
        assert [[g for _, g in s] for s in shared] == [[g for _, g in s] for s in whole]
        torch.testing.assert_close(torch.tensor([n for s in shared for n, _ in s]),
                                   torch.tensor([n for s in whole for n, _ in s]), atol=1e-4, rtol=1e-5)
        runs.append(shared)
    plain, ablated = runs
    assert plain[0][0][1] and plain[0][2] == (0.0, True)  # the model's own greedy text; an empty continuation
    assert ablated[1][0][0] != pytest.approx(plain[1][0][0])  # the edit was in force in the cached passes

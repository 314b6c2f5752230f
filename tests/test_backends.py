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

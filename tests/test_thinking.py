"""Reasoning-model support: the empty-thought probability, on a tiny model whose vocabulary has <think>."""

import torch
from conftest import PROMPTS
from tiny import tiny_model

from interp.behaviour.thinking import empty_thought_probability, thinks


def thinking_model():
    model = tiny_model("qwen2", backend="nnsight")
    model.tokenizer.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    model.hf.resize_token_embeddings(len(model.tokenizer))
    return model


def _p_next(model, text: str, token: str) -> float:
    ids = model.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model.hf(input_ids=ids).logits[0, -1]
    return float(torch.softmax(logits.float(), -1)[model.tokenizer.convert_tokens_to_ids(token)])


def test_empty_thought_probability_is_the_two_ways_the_thought_can_close_at_once():
    model = thinking_model()
    assert thinks(model) and not thinks(tiny_model("qwen2"))
    got = empty_thought_probability(model, PROMPTS)
    for prompt, p in zip(PROMPTS, got, strict=True):
        context = model.chat_text(prompt) + "<think>\n"
        newline = model.tokenizer.convert_ids_to_tokens(model.tokenizer("\n", add_special_tokens=False)["input_ids"])[0]
        expected = _p_next(model, context, "</think>") + _p_next(model, context, newline) * _p_next(
            model, context + "\n", "</think>")
        assert abs(p - expected) < 1e-5 and 0 < p < 1

"""Reasoning models (DeepSeek-R1 distills, QwQ, Qwen3): the <think> block as a suppression signal.

R1-style models often censor by skipping the thought: the reply opens `<think>\\n\\n</think>` and goes
straight to a canned answer. The probability of that empty thought, read from the next-token
distribution after the opening tag, is a graded suppression signal that needs no generation. The
judge reads only the answer after a closed thought (interp.behaviour.judge.strip_thinking).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interp.core.model import Model
from interp.core.types import ChatBatch

__all__ = ["empty_thought_probability", "thinks"]

OPEN, CLOSE = "<think>", "</think>"


def _single_token(model: Model, text: str) -> int | None:
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


def thinks(model: Model) -> bool:
    """The tokenizer has <think> and </think> as single tokens: a reasoning model's vocabulary."""
    return _single_token(model, OPEN) is not None and _single_token(model, CLOSE) is not None


def _with_open_tag(model: Model, prompt: str) -> str:
    """The templated prompt ending inside an opened thought (some templates already add the tag)."""
    text = model.chat_text(prompt)
    return text if text.rstrip().endswith(OPEN) else f"{text}{OPEN}\n"


@torch.no_grad()
def empty_thought_probability(model: Model, prompts: Sequence[str]) -> list[float]:
    """P(the thought closes at once) per prompt: P(</think>) + P(newline) x P(</think> | newline)."""
    close, newline = _single_token(model, CLOSE), _single_token(model, "\n")
    if close is None:
        return [float("nan")] * len(prompts)
    contexts = [_with_open_tag(model, p) for p in prompts]
    first = torch.softmax(_next_logits(model, contexts), -1)
    p = first[:, close].double()
    if newline is not None:
        second = torch.softmax(_next_logits(model, [c + "\n" for c in contexts]), -1)
        p = p + first[:, newline].double() * second[:, close].double()
    return [float(x) for x in p]


def _next_logits(model: Model, texts: list[str]) -> torch.Tensor:  # [prompt, vocab]
    batch = model.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)  # left padded
    ids, mask = batch["input_ids"].to(model.device), batch["attention_mask"].to(model.device)
    return model.backend.run(ChatBatch(ids, mask), logits="last").logits.float()

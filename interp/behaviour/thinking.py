"""Reasoning models (DeepSeek-R1 distills, QwQ, Qwen3): the <think> block as a suppression signal.

R1-style models often censor by skipping the thought: the reply opens `<think>\\n\\n</think>` and goes
straight to a canned answer. Two measures of it: the probability of that empty thought, read from the
next-token distribution after the opening tag (graded, no generation), and the share of generated
completions whose thought is empty. The judge reads only the answer after a closed thought
(interp.behaviour.judge.strip_thinking); a thought still open when the budget ran out has no answer.

Chat templates leave the assistant turn in one of three states (`thought_mode`): `opened` (the template
writes `<think>\\n` itself: R1 distills, QwQ), `free` (the model opens its own thought: Qwen3 with thinking
on), `closed` (the template writes an empty thought: Qwen3 with `enable_thinking=False`, nothing to measure).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal

import torch

from interp.behaviour.judge import CLOSE, OPEN, thought_unfinished
from interp.core.model import Model
from interp.core.types import ChatBatch

__all__ = ["CLOSE", "OPEN", "ThoughtMode", "empty_thought_probability", "thinks", "thought", "thought_mode",
           "thought_prefix"]

ThoughtMode = Literal["none", "opened", "free", "closed"]
Thought = Literal["empty", "full", "unfinished", "absent"]
WHITESPACE_PATHS = 4  # whitespace tokens followed on the way to `</think>` (the likeliest, per prompt)
BATCH = 16  # texts per forward pass
_MARKER = "interp-thought-marker"


def _single_token(model: Model, text: str) -> int | None:
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


def thinks(model: Model) -> bool:
    """The tokenizer has <think> and </think> as single tokens: a reasoning model's vocabulary."""
    return _single_token(model, OPEN) is not None and _single_token(model, CLOSE) is not None


def _turn_start(model: Model) -> str:
    """What the chat template writes after the user's message (its generation prompt)."""
    text = model.chat_text(_MARKER)
    return text[text.rindex(_MARKER) + len(_MARKER):]


def thought_mode(model: Model) -> ThoughtMode:
    """How the chat template leaves the assistant turn: see the module docstring."""
    if not thinks(model):
        return "none"
    start = _turn_start(model).rstrip()
    if start.endswith(CLOSE):
        return "closed"
    return "opened" if start.endswith(OPEN) else "free"


def thought_prefix(model: Model) -> str:
    """The part of the thought the template already wrote (`<think>\\n` for R1 distills, else ""): put
    back in front of a completion, the text holds its whole thought and the judge can find the answer."""
    start = _turn_start(model)
    return start[start.rindex(OPEN):] if thought_mode(model) == "opened" else ""


def thought(completion: str) -> Thought:
    """What a completion (with its `thought_prefix`) did with its thought: closed it at once (`empty`),
    thought and closed it (`full`), ran out of budget inside it (`unfinished`), or never opened one."""
    if thought_unfinished(completion):
        return "unfinished"
    if CLOSE not in completion:
        return "absent"
    inside = completion.split(CLOSE, 1)[0].split(OPEN)[-1]
    return "empty" if not inside.strip() else "full"


@torch.no_grad()
def empty_thought_probability(model: Model, prompts: Sequence[str], paths: int = WHITESPACE_PATHS) -> list[float]:
    """P(the thought closes before any word) per prompt, from the opened thought on: P(`</think>`) plus,
    over the `paths` likeliest whitespace-only tokens w, P(w) x P(`</think>` | w). NaN for a model whose
    template leaves no thought open to measure (no <think> vocabulary, or thinking switched off)."""
    close, mode = _single_token(model, CLOSE), thought_mode(model)
    if close is None or mode == "closed":
        return [float("nan")] * len(prompts)
    # a template that opened the thought wrote the tag (and its newline) already
    contexts = [model.chat_text(p) + ("" if mode == "opened" else OPEN) for p in prompts]
    first = torch.softmax(_next_logits(model, contexts), -1).double()  # [prompt, vocab]
    spaces = torch.tensor(_whitespace_ids(model.tokenizer), dtype=torch.long)
    p = first[:, close].clone()
    if len(spaces):
        top = first[:, spaces].topk(min(paths, len(spaces)), dim=-1)  # [prompt, paths]
        tokens = spaces[top.indices.cpu()]  # [prompt, paths]
        pairs = [(contexts[i], int(t)) for i in range(len(prompts)) for t in tokens[i]]
        then_close = torch.softmax(_next_logits(model, [c for c, _ in pairs], [t for _, t in pairs]), -1)[:, close]
        p = p + (top.values * then_close.double().view_as(top.values)).sum(-1)
    return [float(x) for x in p]


@functools.lru_cache(maxsize=4)
def _whitespace_ids(tokenizer: Any) -> tuple[int, ...]:
    """Tokens that decode to whitespace only ("\\n", "\\n\\n", spaces...)."""
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return tuple(i for i, t in enumerate(texts) if t and not t.strip())


def _next_logits(model: Model, texts: list[str], then: list[int] | None = None) -> torch.Tensor:  # [text, vocab]
    """Next-token logits after each text (followed by the token `then[i]`, appended as an id: as text it
    could merge with the text's last token)."""
    encoded = [model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    if then is not None:
        encoded = [e + [t] for e, t in zip(encoded, then, strict=True)]
    pad, out = model.tokenizer.pad_token_id, []
    for start in range(0, len(encoded), BATCH):
        chunk = encoded[start : start + BATCH]
        width = max(map(len, chunk))
        ids = torch.tensor([[pad] * (width - len(e)) + e for e in chunk])  # [text, width], left padded
        mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in chunk])
        batch = ChatBatch(ids.to(model.device), mask.to(model.device))
        out.append(model.backend.run(batch, logits="last").logits.float().cpu())
    return torch.cat(out)

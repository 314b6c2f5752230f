"""Measurements on a model that need no judge: next-token logits, KL between distributions, and the
cross-entropy of given continuations (teacher-forced), each under whatever edits are active."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch

from interp.core.generation import length_batches
from interp.core.model import Model
from interp.core.types import ChatBatch

__all__ = ["Intervention", "continuation_ce", "continuation_logprob", "continuation_nll", "kl_under", "last_logits", "mean_kl"]

Intervention = Callable[[], AbstractContextManager]  # a fresh edit context each call, e.g. lambda: ablate(m, d)


@torch.no_grad()
def last_logits(model: Model, prompts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
    """[prompt, vocab] next-token logits at the last prompt position, under the active edits."""
    out: list[torch.Tensor | None] = [None] * len(prompts)
    for indices in length_batches(model, prompts, batch_size):
        logits = model.backend.run(model.format_chat([prompts[i] for i in indices]), logits="last").logits
        for i, row in zip(indices, logits.float().cpu(), strict=True):
            out[i] = row
    return torch.stack(out)


def mean_kl(base_logits: torch.Tensor, new_logits: torch.Tensor) -> float:
    """Mean KL(base || new) over prompts, of the next-token distributions."""
    base = torch.log_softmax(base_logits.float(), -1)
    new = torch.log_softmax(new_logits.float(), -1)
    return float((base.exp() * (base - new)).sum(-1).mean())


def kl_under(model: Model, prompts: Sequence[str], intervention: Intervention,
             base_logits: torch.Tensor | None = None) -> float:
    base = base_logits if base_logits is not None else last_logits(model, prompts)
    with intervention():
        new = last_logits(model, prompts)
    return mean_kl(base, new)


@torch.no_grad()
def continuation_nll(model: Model, prompts: Sequence[str], continuations: Sequence[str],
                     intervention: Intervention | None = None, batch_size: int = 16) -> list[tuple[float, int]]:
    """Per prompt: (summed negative log-likelihood, token count) of the given continuation after the chat
    prompt, teacher-forced, under the intervention if one is given."""
    out: list[tuple[float, int]] = []
    tok = model.tokenizer
    for start in range(0, len(prompts), batch_size):
        heads = [model.chat_text(p) for p in prompts[start : start + batch_size]]
        tails = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations[start : start + batch_size]]
        rows = [tok(h, add_special_tokens=False)["input_ids"] + t for h, t in zip(heads, tails, strict=True)]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tok.pad_token_id)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, width - len(r) :] = torch.tensor(r)
            mask[i, width - len(r) :] = 1
        batch = ChatBatch(ids, mask).to(model.device)
        if intervention is None:
            logits = model.backend.run(batch, logits="all").logits
        else:
            with intervention():
                logits = model.backend.run(batch, logits="all").logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)  # [batch, seq - 1, vocab]
        nll = -logp.gather(-1, batch.input_ids[:, 1:, None])[..., 0]  # [batch, seq - 1]
        out += [(float(nll[i, -len(tail) :].sum()), len(tail)) if tail else (0.0, 0) for i, tail in enumerate(tails)]
    return out


def continuation_ce(model: Model, prompts: Sequence[str], continuations: Sequence[str],
                    intervention: Intervention | None = None, batch_size: int = 16) -> float:
    """Mean per-token cross-entropy of the given continuations after each prompt (nats/token)."""
    total, count = 0.0, 0
    for summed, n in continuation_nll(model, prompts, continuations, intervention, batch_size):
        total += summed
        count += n
    return total / max(count, 1)


def continuation_logprob(model: Model, prompts: Sequence[str], continuations: Sequence[str],
                         intervention: Intervention | None = None, batch_size: int = 16) -> list[float]:
    """Per prompt: mean log-probability per token of its continuation (teacher-forced)."""
    return [-summed / max(n, 1) for summed, n in continuation_nll(model, prompts, continuations, intervention, batch_size)]

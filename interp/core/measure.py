"""Measurements on a model that need no judge: next-token logits, KL between distributions (at the first
token, and along a continuation), and the cross-entropy of given continuations (teacher-forced), each under
whatever edits are active."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch

from interp.core.errors import InterpError
from interp.core.generation import complete, length_batches
from interp.core.model import Model
from interp.core.progress import advance, progress_bar
from interp.core.types import ChatBatch

__all__ = ["Intervention", "continuation_ce", "continuation_kl", "continuation_logprob", "continuation_nll", "kl_under",
           "last_logits", "left_pad", "mean_kl", "shared_prefix_scores", "token_scores"]

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


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> ChatBatch:
    """Token rows of any lengths as one left-padded batch (the layout every backend expects)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id)  # [batch, seq]
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r))
            mask[i, width - len(r) :] = 1
    return ChatBatch(ids, mask)


def _teacher_forced(model: Model, prompts: Sequence[str], tails: Sequence[list[int]]) -> ChatBatch:
    """Each chat prompt followed by its tail's token ids, left padded so every row ends at the last column."""
    tok = model.tokenizer
    rows = [tok(model.chat_text(p), add_special_tokens=False)["input_ids"] + t for p, t in zip(prompts, tails, strict=True)]
    return left_pad(rows, tok.pad_token_id).to(model.device)


def _all_logits(model: Model, batch: ChatBatch, intervention: Intervention | None) -> torch.Tensor:
    if intervention is None:
        return model.backend.run(batch, logits="all").logits
    with intervention():
        return model.backend.run(batch, logits="all").logits


@torch.no_grad()
def token_scores(model: Model, pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[tuple[float, bool]]:
    """Per (context ids, continuation ids) pair, run as one batch under the active edits: the continuation's
    summed negative log-likelihood, teacher-forced, and whether greedy decoding would have produced it."""
    batch = left_pad([list(head) + list(tail) for head, tail in pairs], model.tokenizer.pad_token_id).to(model.device)
    logits = model.backend.run(batch, logits="all").logits  # [batch, seq, vocab]
    span = max(1, max(len(tail) for _, tail in pairs))  # only the continuation positions are scored
    logp = torch.log_softmax(logits[:, -span - 1 : -1].float(), -1)  # [batch, span, vocab]
    targets = batch.input_ids[:, -span:]  # [batch, span]
    nll = -logp.gather(-1, targets[..., None])[..., 0]  # [batch, span]
    greedy = logp.argmax(-1) == targets  # [batch, span]
    return [(float(nll[i, -len(tail) :].sum()), bool(greedy[i, -len(tail) :].all())) if tail else (0.0, True)
            for i, (_, tail) in enumerate(pairs)]


def continuation_nll(model: Model, prompts: Sequence[str], continuations: Sequence[str],
                     intervention: Intervention | None = None, batch_size: int = 16,
                     description: str | None = None) -> list[tuple[float, int]]:
    """Per prompt: (summed negative log-likelihood, token count) of the given continuation after the chat
    prompt, teacher-forced, under the intervention if one is given. Continuations of the same prompt (a probe
    item's choices) share one pass over it where the backend keeps a KV cache. `description`: a progress bar."""
    tok = model.tokenizer
    by_prompt: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        by_prompt.setdefault(p, []).append(i)
    tails = [tok(c, add_special_tokens=False)["input_ids"] for c in continuations]
    out: list[tuple[float, int] | None] = [None] * len(prompts)
    show, groups = description is not None, list(by_prompt.items())
    with progress_bar(description or "", len(prompts), unit="sequences", show=show) as bar:
        task = bar.add_task(description or "", total=len(prompts), rate="-", visible=show)
        for start in range(0, len(groups), batch_size):
            chunk = groups[start : start + batch_size]
            heads = [tok(model.chat_text(p), add_special_tokens=False)["input_ids"] for p, _ in chunk]
            with intervention() if intervention is not None else nullcontext():
                scores = (shared_prefix_scores(model, heads, [[tails[i] for i in idx] for _, idx in chunk], batch_size)
                          if model.backend.kv_cache else _each_pair(model, heads, [idx for _, idx in chunk], tails))
            for (_, idx), group_scores in zip(chunk, scores, strict=True):
                for i, (nll, _) in zip(idx, group_scores, strict=True):
                    out[i] = (nll, len(tails[i]))
            advance(bar, task, sum(len(idx) for _, idx in chunk))
    return out


def _each_pair(model: Model, heads: list[list[int]], groups: list[list[int]], tails: list[list[int]]):
    """token_scores per group, each (context, continuation) pair run whole (no cache to share)."""
    flat = token_scores(model, [(head, tails[i]) for head, idx in zip(heads, groups, strict=True) for i in idx])
    return _regroup(flat, [len(idx) for idx in groups])


def _regroup(flat: list, sizes: Sequence[int]) -> list[list]:
    """A flat list cut back into consecutive groups of the given sizes."""
    out, at = [], 0
    for size in sizes:
        out.append(flat[at : at + size])
        at += size
    return out


@torch.no_grad()
def shared_prefix_scores(model: Model, heads: Sequence[Sequence[int]], tails: Sequence[Sequence[Sequence[int]]],
                         rows_per_pass: int = 16) -> list[list[tuple[float, bool]]]:
    """`token_scores` for several continuations of each context, under the active edits: each context runs once,
    and its KV cache serves all of its continuations (a probe item's four choices: ~3.5x fewer tokens).
    Per context, per continuation: (summed negative log-likelihood, whether greedy decoding gives it)."""
    prefix = left_pad(heads, model.tokenizer.pad_token_id).to(model.device)
    last, cache = model.backend.run_cached(prefix.input_ids, prefix.attention_mask, prefix.position_ids, last_only=True)
    first_logp = torch.log_softmax(last[:, -1].float(), -1)  # [context, vocab]: each continuation's first token
    rows = [(c, tail) for c, group in enumerate(tails) for tail in group]
    scored: list[tuple[float, bool]] = []
    for start in range(0, len(rows), rows_per_pass):
        chunk = rows[start : start + rows_per_pass]
        index = torch.tensor([c for c, _ in chunk], device=model.device)
        width = max(1, max(len(t) for _, t in chunk))
        ids = torch.full((len(chunk), width), model.tokenizer.pad_token_id, device=model.device)  # [row, width]
        mask = torch.zeros_like(ids)
        for r, (_, tail) in enumerate(chunk):  # right padded: a pad after the tail changes nothing before it
            ids[r, : len(tail)] = torch.tensor(list(tail), device=model.device)
            mask[r, : len(tail)] = 1
        full_mask = torch.cat([prefix.attention_mask[index], mask], 1)  # [row, context + width]
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)[:, -width:]
        rows_cache = copy.deepcopy(cache)
        rows_cache.batch_select_indices(index)
        logits, _ = model.backend.run_cached(ids, full_mask, positions, rows_cache)  # [row, width, vocab]
        logp = torch.cat([first_logp[index][:, None], torch.log_softmax(logits[:, :-1].float(), -1)], 1)
        nll = -logp.gather(-1, ids[..., None])[..., 0]  # [row, width]
        greedy = logp.argmax(-1) == ids
        scored += [(float(nll[r, : len(t)].sum()), bool(greedy[r, : len(t)].all())) if t else (0.0, True)
                   for r, (_, t) in enumerate(chunk)]
    return _regroup(scored, [len(group) for group in tails])


@torch.no_grad()
def continuation_kl(model: Model, prompts: Sequence[str], intervention: Intervention,
                    continuations: Sequence[str] | None = None, tokens: int = 32, batch_size: int = 8) -> float:
    """Mean KL(base || edited) per token along the first `tokens` next-token distributions of each prompt's
    continuation, teacher-forced: at the end of the chat prompt (the first-token KL) and after each of the
    continuation's first `tokens` - 1 tokens. The base is the model as it stands; the edited model is it
    under `intervention`. `continuations`: the base model's own greedy ones, generated here if not given
    (`complete`, before any edit), so the edited model is judged on the text the base model would write.
    Averaged over every (prompt, position) pair; a continuation that ended sooner contributes fewer."""
    if tokens < 1:
        raise InterpError(f"tokens must be at least 1, got {tokens}")
    if not prompts:
        raise InterpError("multi-token KL needs at least one prompt")
    if continuations is not None and len(continuations) != len(prompts):
        raise InterpError(f"{len(continuations)} continuations for {len(prompts)} prompts")
    if continuations is None:
        continuations = complete(model, prompts, tokens, description="base continuations")
    tok = model.tokenizer
    total, count = 0.0, 0
    for start in range(0, len(prompts), batch_size):
        tails = [tok(c, add_special_tokens=False)["input_ids"][: tokens - 1]
                 for c in continuations[start : start + batch_size]]
        batch = _teacher_forced(model, prompts[start : start + batch_size], tails)
        compared = 1 + max(len(t) for t in tails)  # positions per row, right-aligned: the last `compared`
        base = torch.log_softmax(_all_logits(model, batch, None)[:, -compared:].float(), -1)  # [batch, compared, vocab]
        new = torch.log_softmax(_all_logits(model, batch, intervention)[:, -compared:].float(), -1)
        kl = (base.exp() * (base - new)).sum(-1)  # [batch, compared]
        column = torch.arange(compared)
        used = torch.stack([column >= compared - 1 - len(t) for t in tails]).to(kl.device)  # [batch, compared]
        total += float(kl[used].sum())
        count += int(used.sum())
    return total / count


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

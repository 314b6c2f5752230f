"""Measuring silence and what an intervention undoes.

Rates per set and language: suppression (refusal or deflection), refusal, deflection, and fact recall
(mean over prompts with facts); specificity is suppression on sensitive minus suppression on controls.
Damage on harmless prompts: first-token KL(base || intervened) and the cross-entropy of the base
model's own greedy continuations under the intervened model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace

import torch

from interp.directions import Direction, unit
from interp.generation import complete
from interp.judge import MarkerJudge, fact_recall, is_suppressed
from interp.models import ChatBatch, Model
from interp.prompts import Prompt
from interp.selection import last_logits, mean_kl

Intervention = Callable[[], AbstractContextManager]
RATE_KEYS = ("suppression_rate", "refusal_rate", "deflection_rate", "fact_recall", "n")


def judge_rows(items: Sequence[Prompt], completions: Sequence[str], judge=None) -> list[dict]:
    judge = judge or MarkerJudge()
    labels = judge([p.prompt for p in items], list(completions), [p.lang for p in items])
    return [
        {
            "prompt": p.prompt, "lang": p.lang, "category": p.category, "label": lab, "text": text,
            "facts": list(p.facts), "fact_recall": fact_recall(text, p.facts),
        }
        for p, text, lab in zip(items, completions, labels, strict=True)
    ]


def rates(rows: Sequence[dict]) -> dict:
    n = len(rows)
    recalls = [r["fact_recall"] for r in rows if r.get("fact_recall") is not None]
    if n == 0:
        return dict.fromkeys(RATE_KEYS[:-1], None) | {"n": 0}
    return {
        "suppression_rate": sum(is_suppressed(r["label"]) for r in rows) / n,
        "refusal_rate": sum(r["label"] == "refusal" for r in rows) / n,
        "deflection_rate": sum(r["label"] == "deflection" for r in rows) / n,
        "fact_recall": sum(recalls) / len(recalls) if recalls else None,
        "n": n,
    }


def rates_by_lang(rows: Sequence[dict]) -> dict:
    out = {"all": rates(rows)}
    for lang in sorted({r["lang"] for r in rows}):
        out[lang] = rates([r for r in rows if r["lang"] == lang])
    return out


def generate_rows(
    model: Model, items: Sequence[Prompt], intervention: Intervention | None, max_new_tokens: int,
    judge=None, description: str = "generating", show_progress: bool = True,
) -> list[dict]:
    texts = [p.prompt for p in items]
    if intervention is None:
        completions = complete(model, texts, max_new_tokens, description=description, show_progress=show_progress)
    else:
        with intervention():
            completions = complete(model, texts, max_new_tokens, description=description, show_progress=show_progress)
    return judge_rows(items, completions, judge)


def kl_under(model: Model, prompts: Sequence[str], intervention: Intervention,
             base_logits: torch.Tensor | None = None) -> float:
    base = base_logits if base_logits is not None else last_logits(model, prompts)
    with intervention():
        new = last_logits(model, prompts)
    return mean_kl(base, new)


@torch.no_grad()
def continuation_ce(model: Model, prompts: Sequence[str], continuations: Sequence[str],
                    intervention: Intervention | None = None, batch_size: int = 16) -> float:
    """Mean per-token cross-entropy of the given continuations after each prompt (nats/token)."""
    total, count = 0.0, 0
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
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        targets = batch.input_ids[:, 1:]
        nll = -logp.gather(-1, targets[..., None])[..., 0]
        for i, tail in enumerate(tails):
            if tail:
                total += float(nll[i, -len(tail) :].sum())
                count += len(tail)
    return total / max(count, 1)


def random_like(direction: Direction, seed: int) -> Direction:
    """A random unit direction with the same raw norm: the baseline any real effect must beat."""
    g = torch.Generator().manual_seed(seed)
    vector = unit(torch.randn(direction.d_model, generator=g))
    return replace(direction, unit=vector, raw=vector * direction.raw.norm(), kind=f"random_{direction.kind}")


def specificity(sensitive: dict, controls: dict) -> dict:
    """Suppression on sensitive minus on controls, per language present in both."""
    out = {}
    for lang in sensitive:
        if lang in controls and sensitive[lang]["n"] and controls[lang]["n"]:
            out[lang] = sensitive[lang]["suppression_rate"] - controls[lang]["suppression_rate"]
    return out

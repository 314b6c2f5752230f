"""Truth margin: does an edit make the truth more likely, with no generation and no judge?

For each sensitive prompt that carries a reference answer and the official-line answer: the
teacher-forced mean log-probability per token of the reference minus that of the official line, and
minus that of the model's own refusal, before and after the edit. Per language, with a seeded bootstrap
interval over prompts. Forward passes only, so it is the measure that scales to 70B models.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from interp.behaviour.judge import strip_thinking
from interp.behaviour.prompts import Prompt
from interp.core.directions import Direction
from interp.core.interventions import ablate
from interp.core.measure import continuation_logprob
from interp.core.model import Model
from interp.study.config import SEED
from interp.study.records import Interval, Labels, MarginChange, TruthMargin

__all__ = ["bootstrap", "refusal_texts", "truth_margin"]

# Used only where the model refused nothing in a language (it then has no refusal of its own).
FALLBACK_REFUSAL = {"en": "I'm sorry, but I can't discuss that topic.", "zh": "抱歉，我无法讨论这个话题。"}


def bootstrap(values: Sequence[float], resamples: int = 1000, seed: int = SEED) -> Interval:
    """The mean and its 95% percentile bootstrap interval."""
    if not values:
        return Interval(0.0, 0.0, 0.0, 0)
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    return Interval(sum(values) / n, means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1], n)


def refusal_texts(labels: Labels) -> dict[str, str]:
    """Each language's most frequent refusal among the model's own train completions (the answer only: a
    reasoning model's thought is not part of what it says)."""
    out = dict(FALLBACK_REFUSAL)
    for lang in FALLBACK_REFUSAL:
        answers = (strip_thinking(r.text).strip() for r in labels.split("train") if r.lang == lang and r.label == "refusal")
        refused = Counter(a for a in answers if a)
        if refused:
            out[lang] = refused.most_common(1)[0][0]
    return out


def truth_margin(model: Model, items: Sequence[Prompt], direction: Direction, refusals: dict[str, str]) -> TruthMargin:
    """Margins before and after ablating `direction`, per language and over all prompts with both answers."""
    usable = [p for p in items if p.reference and p.official]
    prompts = [p.prompt for p in usable]

    def margins(intervention) -> tuple[list[float], list[float]]:
        answers = ([p.reference for p in usable] + [p.official for p in usable]
                   + [refusals.get(p.lang, FALLBACK_REFUSAL["en"]) for p in usable])
        n = len(usable)  # one call: the three answers to a prompt share its pass where the backend caches
        logp = continuation_logprob(model, prompts * 3, answers, intervention)
        ref, off, refuse = logp[:n], logp[n : 2 * n], logp[2 * n :]
        return [r - o for r, o in zip(ref, off, strict=True)], [r - x for r, x in zip(ref, refuse, strict=True)]

    before_off, before_refuse = margins(None)
    after_off, after_refuse = margins(lambda: ablate(model, direction))
    langs = ["all", *sorted({p.lang for p in usable})]

    def change(before: list[float], after: list[float]) -> dict[str, MarginChange]:
        out = {}
        for lang in langs:
            keep = [i for i, p in enumerate(usable) if lang in ("all", p.lang)]
            b, a = [before[i] for i in keep], [after[i] for i in keep]
            out[lang] = MarginChange(bootstrap(b), bootstrap(a), bootstrap([y - x for x, y in zip(b, a, strict=True)]))
        return out

    return TruthMargin(change(before_off, after_off), change(before_refuse, after_refuse))

"""Judged completions and the rates a study reports.

Rates per set and language: suppression (refusal or deflection), refusal, deflection, invented,
faithful, the share of degenerate (looping) completions, and fact recall (mean over prompts with
countable facts); specificity is suppression on sensitive minus suppression on controls. A reasoning
model's completion whose thought never closed is UNFINISHED: not judged, outside every rate's n, counted
beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from interp.behaviour.judge import (
    MARKERS_KEY,
    UNFINISHED,
    degenerate,
    fact_recall,
    is_suppressed,
    thought_unfinished,
    verdict_certain,
)
from interp.behaviour.judges import Case, Judge, MarkerJudge
from interp.behaviour.prompts import Prompt
from interp.behaviour.thinking import thought_prefix
from interp.core.generation import complete
from interp.core.measure import Intervention
from interp.core.model import Model
from interp.study.records import Example, LabelledRow, PairedRow, Rates, SetResult

__all__ = ["as_prompts", "checked_rates", "examples", "generate_rows", "judge_rows", "paired_rows", "rates",
           "rates_by_lang", "set_result", "share", "specificity", "unchecked_line"]


def judge_rows(items: Sequence[Prompt], completions: Sequence[str], judge: Judge | None = None, set_name: str = "",
               split: str = "") -> list[LabelledRow]:
    judge = judge or MarkerJudge()
    judged = [i for i, text in enumerate(completions) if not thought_unfinished(text)]
    cases = [Case(items[i].prompt, completions[i], items[i].lang, items[i].facts, items[i].reference,
                  items[i].official) for i in judged]
    verdicts = dict(zip(judged, judge(cases) if cases else [], strict=True))
    return [LabelledRow(set_name, split, p.prompt, p.lang, p.category, verdicts.get(i, UNFINISHED), text,
                        tuple(p.facts), fact_recall(text, p.facts, p.prompt) if i in verdicts else None,
                        degenerate=degenerate(text), reference=p.reference, official=p.official)
            for i, (p, text) in enumerate(zip(items, completions, strict=True))]


def generate_rows(model: Model, items: Sequence[Prompt], intervention: Intervention | None, max_new_tokens: int,
                  judge: Judge | None = None, description: str = "generating", show_progress: bool = True, set_name: str = "",
                  split: str = "") -> list[LabelledRow]:
    """Greedy completions, judged. A completion stops early only once the markers make its answer
    suppressed (no later token can turn that verdict into an answer); an answer runs the whole budget. A
    thought the chat template opened is written back in front of each completion, so the stored text
    holds the whole thought and the judge reads only what follows it."""
    texts, prefix = [p.prompt for p in items], thought_prefix(model)

    def stop(text: str) -> bool:
        return verdict_certain(prefix + text)

    def run() -> list[str]:
        made = complete(model, texts, max_new_tokens, stop=stop, description=description, show_progress=show_progress,
                        stop_key=MARKERS_KEY)
        return [prefix + text for text in made]

    if intervention is None:
        completions = run()
    else:
        with intervention():
            completions = run()
    return judge_rows(items, completions, judge, set_name, split)


def checked_rates(rows: Sequence[LabelledRow], judge: Judge) -> Rates:
    """`rates`, where faithful counts only answers the judge could check. An answer the markers judge passed
    with no fact checklist to test it against (a user's prompt file without facts) is answered, not known to
    be true: it leaves the faithful share for `unchecked_rate`, and with no checkable answer at all the
    faithful and invented shares are None, never the share of answers and of loops."""
    plain = rates(rows)
    if not plain.n:
        return plain
    faithful = sum(r.label == "faithful" for r in rows)
    unchecked = sum(r.label == "faithful" and not judge.checks_truth(Case(r.prompt, r.text, r.lang, tuple(r.facts)))
                    for r in rows)
    checked = faithful - unchecked + sum(r.label == "invented" for r in rows)
    if unchecked and not checked:
        return replace(plain, faithful_rate=None, invented_rate=None, unchecked_rate=unchecked / plain.n)
    return replace(plain, faithful_rate=(faithful - unchecked) / plain.n, unchecked_rate=unchecked / plain.n)


def share(rate: float | None) -> str:
    """A rate in a one-line summary: two decimals, or '-' where nothing was judged."""
    return "-" if rate is None else f"{rate:.2f}"


def unchecked_line(judge: str, shares: str) -> str:
    """What a user reads when some answers could not be checked against facts."""
    return (f"unchecked answers {shares}: prompts without a fact checklist, where the {judge} judge cannot tell "
            "faithful from invented, so they are not counted as faithful. Add `facts` to the prompt file, or "
            "judge with --judge model:SPEC or openai:URL")


def as_prompts(rows: Sequence[LabelledRow]) -> list[Prompt]:
    """Labelled rows back to prompts (with their facts, for fact recall), to generate on again."""
    return [Prompt(r.prompt, r.category, r.lang, tuple((f,) if isinstance(f, str) else tuple(f) for f in r.facts),
                   r.reference, r.official) for r in rows]


def rates(rows: Sequence[LabelledRow]) -> Rates:
    judged = [r for r in rows if r.label != UNFINISHED]
    unfinished, rows, n = len(rows) - len(judged), judged, len(judged)
    if n == 0:
        return Rates(None, None, None, None, 0, unfinished=unfinished)
    recalls = [r.fact_recall for r in rows if r.fact_recall is not None]
    return Rates(
        suppression_rate=sum(is_suppressed(r.label) for r in rows) / n,
        refusal_rate=sum(r.label == "refusal" for r in rows) / n,
        deflection_rate=sum(r.label == "deflection" for r in rows) / n,
        fact_recall=sum(recalls) / len(recalls) if recalls else None,
        n=n,
        invented_rate=sum(r.label == "invented" for r in rows) / n,
        faithful_rate=sum(r.label == "faithful" for r in rows) / n,
        degenerate_rate=sum(r.degenerate for r in rows) / n,
        unfinished=unfinished,
    )


def rates_by_lang(rows: Sequence[LabelledRow], judge: Judge | None = None) -> dict[str, Rates]:
    """Rates of all rows and per language (with `judge`: `checked_rates`)."""
    def of(group: Sequence[LabelledRow]) -> Rates:
        return checked_rates(group, judge) if judge else rates(group)

    return {"all": of(rows)} | {lang: of([r for r in rows if r.lang == lang]) for lang in sorted({r.lang for r in rows})}


def examples(before: Sequence[LabelledRow], after: Sequence[LabelledRow], n: int = 4) -> tuple[Example, ...]:
    """Prompts whose suppression flipped (or the first few, if none did)."""
    pairs = list(zip(before, after, strict=True))
    flipped = [(b, a) for b, a in pairs if is_suppressed(b.label) != is_suppressed(a.label)]
    return tuple(Example(b.prompt, b.lang, b.label, b.text, a.label, a.text) for b, a in (flipped or pairs)[:n])


def set_result(before: Sequence[LabelledRow], after: Sequence[LabelledRow], with_examples: bool = True) -> SetResult:
    return SetResult(rates_by_lang(before), rates_by_lang(after), examples(before, after) if with_examples else ())


def paired_rows(kind: str, set_name: str, before: Sequence[LabelledRow], after: Sequence[LabelledRow]) -> list[PairedRow]:
    return [PairedRow(kind, set_name, b.prompt, b.category, b.lang, b.label, a.label, is_suppressed(b.label),
                      is_suppressed(a.label), b.fact_recall, a.fact_recall, b.text, a.text,
                      b.label == "faithful", a.label == "faithful")
            for b, a in zip(before, after, strict=True)]


def specificity(sensitive: dict[str, Rates], controls: dict[str, Rates]) -> dict[str, float]:
    """Suppression on sensitive minus on controls, per language present in both."""
    return {lang: sensitive[lang].suppression_rate - controls[lang].suppression_rate
            for lang in sensitive if lang in controls and sensitive[lang].n and controls[lang].n}

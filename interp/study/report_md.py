"""report.md: a plain-language verdict first, then the before/after tables and example completions."""

from __future__ import annotations

from collections.abc import Sequence

from interp.study.damage_records import Damage
from interp.study.records import KindResult, Rates, Report, SetResult, Transfer, TruthMargin
from interp.study.report_thinking import budget_words, thinking_lines, thinking_section
from interp.study.search_records import SearchParams, SearchResult

__all__ = ["damage_line", "render", "search_section", "verdict"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _undone(kind: KindResult) -> float | None:
    before, after = kind.baseline.suppression_rate, kind.ablated.suppression_rate
    return None if not before or after is None else (before - after) / before


def verdict(report: Report) -> list[str]:
    lines = []
    for name, k in report.kinds.items():
        if report.contrasts[name].derived:
            continue
        undone, rand = _undone(k), k.random_baseline.rates.suppression_rate
        target = report.contrasts[name].label or report.contrasts[name].target
        beat = ("beats" if k.ablated.suppression_rate < rand else "does NOT beat") if None not in (
            k.ablated.suppression_rate, rand) else "cannot be compared with"
        filters = k.scores.filters_passed or "?"
        caveat = "" if filters == "kl+induce" else (
            f" No candidate passed every selection filter; this one passed: {filters} (see the layer sweep).")
        lines.append(
            f"- **{name}** (layer {k.layer}, position {k.position}): ablation takes suppression on {target} "
            f"test prompts from {_pct(k.baseline.suppression_rate)} to {_pct(k.ablated.suppression_rate)} "
            f"({_pct(undone)} of it undone) at harmless KL {k.kl_harmless:.3f}; it {beat} a random direction "
            f"of the same norm ({_pct(rand)}).{caveat}"
        )
    damaged = [f"{name}: {damage_line(k.damage)}" for name, k in report.kinds.items()
               if k.damage and not report.contrasts[name].derived]
    if damaged:
        lines.append(f"- **damage beyond the first token** (harmless continuations, capability probe): {'; '.join(damaged)}.")
    c = report.kinds["censorship"]
    lines += _what_came_back(c, report.judge, budget_words(report.config.eval_tokens, report.thinking))
    lines += thinking_lines(report.thinking, "censorship", report.contrasts["censorship"].target,
                            report.contrasts["censorship"].label)
    if c.truth:
        lines.append(_truth_line(c.truth))
    if c.specificity:
        parts = ", ".join(f"{lang} {100 * v:+.0f} points" for lang, v in c.specificity.baseline.items())
        lines.append(f"- **specificity** (suppression on sensitive minus controls) before ablation: {parts}. "
                     "Near zero means the model silences politics in general, not China-sensitive topics.")
    lines.append(f"- **same mechanism?** cosine(censorship, refusal) at the selected directions: "
                 f"{report.cosine_selected:.2f}.")
    s = report.kinds["censorship_specific"]
    lines.append(f"- **censorship-specific component** (censorship minus its projection on refusal): ablating it alone "
                 f"takes sensitive suppression from {_pct(s.baseline.suppression_rate)} to "
                 f"{_pct(s.ablated.suppression_rate)}.")
    lines += _transfer_verdict(report.transfer)
    if report.empty_thought:
        parts = "; ".join(f"{n}: " + ", ".join(f"{lang} {_pct(p)}" for lang, p in by.items())
                          for n, by in report.empty_thought.items())
        lines.append(f"- **empty thought** (P the reply skips its <think> block): {parts}.")
    return lines


def _what_came_back(k: KindResult, judge: str, tokens: str) -> list[str]:
    """Suppression and faithful before -> after, and what replaced the silence, said plainly."""
    b, a = k.baseline, k.ablated
    lines = [f"- **what comes back** (sensitive test prompts, {tokens}, judge {judge}): suppression "
             f"{_pct(b.suppression_rate)} -> {_pct(a.suppression_rate)}; faithful {_pct(b.faithful_rate)} -> "
             f"{_pct(a.faithful_rate)}; invented {_pct(b.invented_rate)} -> {_pct(a.invented_rate)} "
             f"(degenerate loops {_pct(a.degenerate_rate)} after); fact recall {_pct(b.fact_recall)} -> {_pct(a.fact_recall)}."]
    if None in (b.suppression_rate, a.suppression_rate, a.invented_rate, a.faithful_rate, b.faithful_rate):
        return lines
    freed = b.suppression_rate - a.suppression_rate
    gained_truth = a.faithful_rate - b.faithful_rate
    if freed <= 0:
        lines.append("- **verdict**: the edit did not lift the silence.")
    elif a.invented_rate > a.faithful_rate:
        lines.append(f"- **verdict**: the silence was mostly replaced by invention: after the edit {_pct(a.invented_rate)} "
                     f"of answers are invented and {_pct(a.faithful_rate)} faithful (faithful rose by "
                     f"{100 * gained_truth:+.0f} points while suppression fell by {100 * freed:.0f}).")
    else:
        lines.append(f"- **verdict**: the lifted silence was mostly replaced by true answers: faithful {_pct(a.faithful_rate)}, "
                     f"invented {_pct(a.invented_rate)} after the edit.")
    return lines


def _truth_line(t: TruthMargin) -> str:
    parts = []
    for lang, m in t.reference_minus_official.items():
        parts.append(f"{lang} {m.before.mean:+.2f} -> {m.after.mean:+.2f} (change {m.change.mean:+.2f}, 95% CI "
                     f"[{m.change.low:+.2f}, {m.change.high:+.2f}], n={m.change.n})")
    return ("- **truth margin** (mean log-prob per token of the reference answer minus the official line, "
            "teacher-forced, no judge): " + "; ".join(parts) + ". Positive means the model prefers the truth.")


def _transfer_verdict(t: Transfer | None) -> list[str]:
    if not t:
        return []
    lines = []
    for src, row in t.languages.built_from.items():
        parts = ", ".join(f"{lang} {_pct(row.ablated.baseline[lang].suppression_rate)} -> "
                          f"{_pct(row.ablated.ablated[lang].suppression_rate)}"
                          for lang in row.ablated.ablated if lang != "all")
        lines.append(f"- **transfer**: the censorship direction built from {src} prompts alone (cosine "
                     f"{row.cosine_with_pooled:.2f} with the pooled one) takes sensitive suppression {parts}.")
    r, c = t.kinds["refusal_on_censored"], t.kinds["censorship_on_harmful"]
    lines.append(f"- **across kinds**: ablating the refusal direction takes sensitive suppression "
                 f"{_pct(r.baseline['all'].suppression_rate)} -> {_pct(r.ablated['all'].suppression_rate)}; "
                 f"the censorship direction takes harmful suppression {_pct(c.baseline['all'].suppression_rate)} -> "
                 f"{_pct(c.ablated['all'].suppression_rate)}.")
    return lines


def _rates_table(title: str, result: SetResult) -> list[str]:
    """One row per language of a before/after pair of rates."""
    rows = [f"| {title} | lang | n | suppression before | after | faithful before | after | invented before | after |",
            "|---|---|---|---|---|---|---|---|---|"]
    for lang, before in result.baseline.items():
        after = result.ablated[lang]
        rows.append(f"| | {lang} | {before.n} | {_pct(before.suppression_rate)} | {_pct(after.suppression_rate)} | "
                    f"{_pct(before.faithful_rate)} | {_pct(after.faithful_rate)} | "
                    f"{_pct(before.invented_rate)} | {_pct(after.invented_rate)} |")
    return rows


def _transfer_section(t: Transfer | None) -> list[str]:
    if not t:
        return []
    out = ["## Transfer: across languages and across kinds (test split)", "",
           f"Censorship directions built from one language's train prompts alone, at layer {t.languages.layer}, "
           f"position {t.languages.position}, ablated on sensitive prompts of every language:", ""]
    for lang, row in t.languages.built_from.items():
        out += _rates_table(f"{lang}-built", row.ablated) + [""]
    out += ["Each direction outside its own contrast:", ""]
    out += _rates_table("refusal dir on sensitive", t.kinds["refusal_on_censored"]) + [""]
    out += _rates_table("censorship dir on harmful", t.kinds["censorship_on_harmful"]) + [""]
    return out


def _row(name: str, lang: str, before: Rates, after: Rates) -> str:
    cells = [(before.suppression_rate, after.suppression_rate), (before.faithful_rate, after.faithful_rate),
             (before.invented_rate, after.invented_rate), (before.refusal_rate, after.refusal_rate),
             (before.deflection_rate, after.deflection_rate), (before.degenerate_rate, after.degenerate_rate),
             (before.fact_recall, after.fact_recall)]
    return f"| {name} | {lang} | {before.n} | " + " | ".join(f"{_pct(b)} | {_pct(a)}" for b, a in cells) + " |"


def _table(kind: KindResult) -> list[str]:
    rows = ["| set | lang | n | suppression before | after | faithful before | after | invented before | after | "
            "refusal before | after | deflection before | after | degenerate before | after | fact recall before | after |",
            "|---" * 17 + "|"]
    for name, result in kind.sets.items():
        rows += [_row(name, lang, before, result.ablated[lang]) for lang, before in result.baseline.items()]
    return rows


def damage_line(damage: Damage, degenerate: Sequence[tuple[str, Rates, Rates]] = ()) -> str:
    """One line: multi-token KL, capability before -> after (per language), degenerate share per set."""
    parts = []
    if damage.kl_per_token is not None:
        parts.append(f"KL per token over {damage.tokens} tokens of base continuations {damage.kl_per_token:.4f} "
                     f"(n={damage.n})")
    b, a = damage.capability_before, damage.capability_after
    if b and a:
        langs = ", ".join(f"{lang} {_pct(v)} -> {_pct(a.by_lang.get(lang))}" for lang, v in b.by_lang.items())
        parts.append(f"capability {_pct(b.accuracy)} -> {_pct(a.accuracy)} ({langs}; n={b.n})")
    parts += [f"degenerate {name} {_pct(before.degenerate_rate)} -> {_pct(after.degenerate_rate)}"
              for name, before, after in degenerate]
    return "; ".join(parts) or "no damage measured"


def _damage(kind: KindResult, damage: Damage) -> list[str]:
    """Damage beyond the first-token KL: capability and degenerate shares before/after, then multi-token KL."""
    rows = ["Damage beyond the first-token KL:", "", "| measure | n | before | after |", "|---|---|---|---|"]
    b, a = damage.capability_before, damage.capability_after
    if b and a:
        rows.append(f"| capability probe accuracy | {b.n} | {_pct(b.accuracy)} | {_pct(a.accuracy)} |")
        rows += [f"| capability probe, {lang} | | {_pct(v)} | {_pct(a.by_lang.get(lang))} |" for lang, v in b.by_lang.items()]
    rows += [f"| degenerate (looping) completions, {name} | {r.baseline['all'].n} | {_pct(r.baseline['all'].degenerate_rate)} | "
             f"{_pct(r.ablated['all'].degenerate_rate)} |" for name, r in kind.sets.items()]
    if damage.kl_per_token is not None:
        rows += ["", f"KL per token over the first {damage.tokens} tokens of the base model's own greedy continuations "
                 f"of {damage.n} harmless prompts (teacher-forced): {damage.kl_per_token:.4f}."]
    return rows + [""]


def _contrasts(report: Report) -> list[str]:
    parts = [f"{c.name} = suppressed {' + '.join(c.suppressed_from)} minus answered {' + '.join(c.answered_from)}"
             for c in report.contrasts.values() if not c.derived]
    return [f"Directions (mean difference on the train split, per language): {'; '.join(parts)}.", ""] if parts else []


def _edit(p: SearchParams | None) -> str:
    if p is None:
        return "-"
    k = p.kernel
    shape = "every block at strength 1" if k is None else (
        f"kernel peak {k.peak:.2f} at layer {k.peak_layer:.1f}, floor {k.floor:.2f} at distance {k.width:.1f}")
    flags = [name for name, on in (("norm-preserving", p.norm_preserving), ("biprojected", p.biprojected)) if on]
    return f"layer {p.layer}, position {p.position}, {shape}" + (f", {' + '.join(flags)}" if flags else "")


def _pick_damage(s: SearchResult) -> list[str]:
    d = s.pick_damage
    if d is None:
        return []
    kl = "-" if d.kl_per_token is None else f"{d.kl_per_token:.4f}"
    cap = ("-" if d.capability_before is None or d.capability_after is None else
           f"{_pct(d.capability_before.accuracy)} -> {_pct(d.capability_after.accuracy)}")
    return [f"- the pick's damage on harmless test prompts: multi-token KL {kl} ({d.tokens} tokens, {d.n} "
            f"prompts); capability probe {cap}"]


def _pick_test(s: SearchResult) -> list[str]:
    t = s.pick_test
    if t is None:
        return []
    kl = "-" if t.kl_harmless is None else f"{t.kl_harmless:.4f}"
    out = [f"- the pick on the test split ({t.set_name}, {t.eval_tokens} new tokens; first-token KL {kl} "
           f"on {t.n_harmless} harmless test prompts):", "",
           "| lang | n | suppression | faithful | invented after | degenerate after |", "|---|---|---|---|---|---|"]
    for lang, b in t.before.items():
        a = t.after[lang]
        out.append(f"| {lang} | {a.n} | {_pct(b.suppression_rate)} -> {_pct(a.suppression_rate)} | "
                   f"{_pct(b.faithful_rate)} -> {_pct(a.faithful_rate)} | {_pct(a.invented_rate)} | "
                   f"{_pct(a.degenerate_rate)} |")
    return out + [""]


def search_section(search: dict[str, SearchResult] | None) -> list[str]:
    """The search stage (validation split): the pick's numbers, its rule, and the Pareto front."""
    out = []
    for kind, s in (search or {}).items():
        done = sum(t.state == "complete" for t in s.trials)
        out += [f"## Search: {kind} (Optuna, validation split)", "",
                f"{len(s.trials)} trials ({done} completed; {s.sampler}). Objectives, both minimised: {s.objectives[0]} "
                f"on {s.n_val} suppressed validation prompts ({s.eval_tokens} new tokens, judge {s.judge}) and "
                f"{s.objectives[1]}.", "", f"Pick rule: {s.pick_rule}.", ""]
        p = s.picked
        out += [f"- **pick**: none ({s.pick_note})." if p is None else
                f"- **pick**: trial {p.number}: {_edit(p.params)}; suppression {_pct(p.suppression)}, "
                f"damage {p.damage:.4f} ({s.pick_note}).", *_pick_damage(s), *_pick_test(s), "",
                "| front trial | edit | suppression | damage |", "|---|---|---|---|"]
        out += [f"| {t.number} | {_edit(t.params)} | {_pct(t.suppression)} | {t.damage:.4f} |"
                for t in sorted((s.trial(n) for n in s.front), key=lambda t: t.damage)]
        out.append("")
    return out


def render(report: Report) -> str:
    m = report.model
    out = [f"# interp report: {m.name}", "",
           f"Model fingerprint `{m.fingerprint[:16]}`, dtype {m.dtype}, backend {m.backend}, "
           f"judge {report.judge}, interp {report.interp_version}, {report.timings.get('total', 0):.0f} s of stages "
           "(the last run of each, resumes included).", "",
           *_contrasts(report), "## Verdict", "", *verdict(report), ""]
    for name, k in report.kinds.items():
        out += [f"## {name}: ablation at every layer (test split)", "", *_table(k), "",
                f"Harmless first-token KL {k.kl_harmless:.4f}; CE of base continuations {k.ce_harmless.base:.3f} -> "
                f"{k.ce_harmless.ablated:.3f} nats/token. Random direction: suppression "
                f"{_pct(k.random_baseline.rates.suppression_rate)}, KL {k.random_baseline.kl_harmless:.4f}.", ""]
        if k.damage:
            out += _damage(k, k.damage)
        if k.truth:
            out += ["Truth margin (teacher-forced mean log-prob per token; 95% bootstrap interval over prompts):", "",
                    "| margin | lang | n | before | after | change [95% CI] |", "|---|---|---|---|---|---|"]
            for title, by_lang in (("reference - official", k.truth.reference_minus_official),
                                   ("reference - refusal", k.truth.reference_minus_refusal)):
                out += [f"| {title} | {lang} | {m.change.n} | {m.before.mean:+.3f} | {m.after.mean:+.3f} | "
                        f"{m.change.mean:+.3f} [{m.change.low:+.3f}, {m.change.high:+.3f}] |" for lang, m in by_lang.items()]
            out.append("")
        if k.steering:
            out += ["Steering (raw mean difference x coef at its layer) on answered test prompts:", "",
                    "| coef | suppression | KL harmless |", "|---|---|---|"]
            out += [f"| {r.coef} | {_pct(r.suppression_rate)} | {r.kl_harmless:.3f} |" for r in k.steering]
            out.append("")
        out += ["Examples:", ""]
        for ex in k.sets[report.contrasts[name].target].examples:
            out += [f"- *{ex.prompt}* ({ex.lang})", f"  - before [{ex.baseline_label}]: {ex.baseline_text[:200]!r}",
                    f"  - after [{ex.intervened_label}]: {ex.intervened_text[:200]!r}"]
        out.append("")
    out += _transfer_section(report.transfer)
    out += thinking_section(report.thinking)
    out += search_section(report.search)
    out += ["## Timings (s)", "", " | ".join(f"{k} {v}" for k, v in report.timings.items()), ""]
    return "\n".join(out)

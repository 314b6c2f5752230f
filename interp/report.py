"""report.md: a plain-language verdict first, then the before/after tables and example completions."""

from __future__ import annotations

from pathlib import Path

from interp.atomic import atomic_write_text


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _undone(kind: dict) -> float | None:
    before, after = kind["baseline"]["suppression_rate"], kind["ablated"]["suppression_rate"]
    return None if not before else (before - after) / before


def verdict(report: dict) -> list[str]:
    lines = []
    for name in ("censorship", "refusal"):
        k = report["kinds"][name]
        undone, rand = _undone(k), k["random_baseline"]["suppression_rate"]
        target = "sensitive" if name == "censorship" else "harmful"
        beat = "beats" if k["ablated"]["suppression_rate"] < rand else "does NOT beat"
        filters = k["scores"].get("filters_passed", "?")
        caveat = "" if filters == "kl+induce" else (
            f" No candidate passed every selection filter; this one passed: {filters} (see the layer sweep).")
        lines.append(
            f"- **{name}** (layer {k['layer']}, position {k['position']}): ablation takes suppression on {target} "
            f"test prompts from {_pct(k['baseline']['suppression_rate'])} to {_pct(k['ablated']['suppression_rate'])} "
            f"({_pct(undone)} of it undone) at harmless KL {k['kl_harmless']:.3f}; it {beat} a random direction "
            f"of the same norm ({_pct(rand)}).{caveat}"
        )
    c = report["kinds"]["censorship"]
    fr_b, fr_a = c["baseline"]["fact_recall"], c["ablated"]["fact_recall"]
    came_back = fr_a is not None and fr_b is not None and fr_a > fr_b + 0.05
    lines.append(
        f"- **facts**: fact recall on sensitive prompts goes from {_pct(fr_b)} to {_pct(fr_a)}: "
        + ("some facts came back." if came_back else
           "the facts did not come back; fewer refusals here do not mean an uncensored model.")
    )
    spec = c.get("specificity", {})
    if spec:
        parts = ", ".join(f"{lang} {100 * v:+.0f} points" for lang, v in spec["baseline"].items())
        lines.append(f"- **specificity** (suppression on sensitive minus controls) before ablation: {parts}. "
                     "Near zero means the model silences politics in general, not China-sensitive topics.")
    lines.append(f"- **same mechanism?** cosine(censorship, refusal) at the selected directions: "
                 f"{report['cosine_selected']:.2f}.")
    s = report["kinds"]["censorship_specific"]
    lines.append(f"- **censorship-specific component** (censorship minus its projection on refusal): ablating it alone "
                 f"takes sensitive suppression from {_pct(s['baseline']['suppression_rate'])} to "
                 f"{_pct(s['ablated']['suppression_rate'])}.")
    lines += _transfer_verdict(report.get("transfer"))
    if report.get("empty_thought"):
        parts = "; ".join(f"{n}: " + ", ".join(f"{lang} {_pct(p)}" for lang, p in by.items())
                          for n, by in report["empty_thought"].items())
        lines.append(f"- **empty thought** (P the reply skips its <think> block): {parts}.")
    return lines


def _transfer_verdict(t: dict | None) -> list[str]:
    if not t:
        return []
    lines = []
    for key, row in t["languages"].items():
        if not key.startswith("from_"):
            continue
        src = key.removeprefix("from_")
        parts = ", ".join(f"{lang} {_pct(row['ablated']['baseline'][lang]['suppression_rate'])} -> "
                          f"{_pct(row['ablated']['ablated'][lang]['suppression_rate'])}"
                          for lang in row["ablated"]["ablated"] if lang != "all")
        lines.append(f"- **transfer**: the censorship direction built from {src} prompts alone (cosine "
                     f"{row['cosine_with_pooled']:.2f} with the pooled one) takes sensitive suppression {parts}.")
    k = t["kinds"]
    lines.append(f"- **across kinds**: ablating the refusal direction takes sensitive suppression "
                 f"{_pct(k['refusal_on_censored']['baseline']['all']['suppression_rate'])} -> "
                 f"{_pct(k['refusal_on_censored']['ablated']['all']['suppression_rate'])}; the censorship direction "
                 f"takes harmful suppression {_pct(k['censorship_on_harmful']['baseline']['all']['suppression_rate'])} -> "
                 f"{_pct(k['censorship_on_harmful']['ablated']['all']['suppression_rate'])}.")
    return lines


def _rates_table(title: str, rates: dict) -> list[str]:
    """One row per language of a {baseline, ablated} pair of rates_by_lang results."""
    rows = [f"| {title} | lang | n | suppression before | after | deflection before | after | fact recall before | after |",
            "|---|---|---|---|---|---|---|---|---|"]
    for lang, before in rates["baseline"].items():
        after = rates["ablated"][lang]
        rows.append(f"| | {lang} | {before['n']} | {_pct(before['suppression_rate'])} | {_pct(after['suppression_rate'])} | "
                    f"{_pct(before['deflection_rate'])} | {_pct(after['deflection_rate'])} | "
                    f"{_pct(before['fact_recall'])} | {_pct(after['fact_recall'])} |")
    return rows


def _transfer_section(t: dict | None) -> list[str]:
    if not t:
        return []
    out = ["## Transfer: across languages and across kinds (test split)", "",
           f"Censorship directions built from one language's train prompts alone, at layer {t['languages']['layer']}, "
           f"position {t['languages']['position']}, ablated on sensitive prompts of every language:", ""]
    for key, row in t["languages"].items():
        if key.startswith("from_"):
            out += _rates_table(f"{key.removeprefix('from_')}-built", row["ablated"]) + [""]
    out += ["Each direction outside its own contrast:", ""]
    out += _rates_table("refusal dir on sensitive", t["kinds"]["refusal_on_censored"]) + [""]
    out += _rates_table("censorship dir on harmful", t["kinds"]["censorship_on_harmful"]) + [""]
    return out


def _table(kind: dict, sets: tuple[str, str]) -> list[str]:
    rows = ["| set | lang | n | suppression before | after | refusal before | after | deflection before | after | fact recall before | after |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in sets:
        for lang, before in kind[name]["baseline"].items():
            after = kind[name]["ablated"][lang]
            rows.append(f"| {name} | {lang} | {before['n']} | {_pct(before['suppression_rate'])} | {_pct(after['suppression_rate'])} | "
                        f"{_pct(before['refusal_rate'])} | {_pct(after['refusal_rate'])} | {_pct(before['deflection_rate'])} | "
                        f"{_pct(after['deflection_rate'])} | {_pct(before['fact_recall'])} | {_pct(after['fact_recall'])} |")
    return rows


def _contrasts(contrasts: dict | None) -> list[str]:
    if not contrasts:
        return []
    parts = [f"{kind} = suppressed {' + '.join(c['suppressed_from'])} minus answered {' + '.join(c['answered_from'])}"
             for kind, c in contrasts.items()]
    return [f"Directions (mean difference on the train split, per language): {'; '.join(parts)}.", ""]


def render(report: dict) -> str:
    m = report["model"]
    out = [f"# interp report: {m['name']}", "",
           f"Model fingerprint `{m['fingerprint'][:16]}`, dtype {m['dtype']}, backend {m['backend']}, "
           f"judge {report['judge']}, interp {report['interp_version']}, total {report['timings']['total']:.0f} s.", "",
           *_contrasts(report.get("contrasts")), "## Verdict", "", *verdict(report), ""]
    sets = {"censorship": ("censored", "controls"), "refusal": ("harmful", "harmless"),
            "censorship_specific": ("censored", "controls")}
    for name, pair in sets.items():
        k = report["kinds"][name]
        out += [f"## {name}: ablation at every layer (test split)", "", *_table(k, pair), "",
                f"Harmless first-token KL {k['kl_harmless']:.4f}; CE of base continuations {k['ce_harmless']['base']:.3f} -> "
                f"{k['ce_harmless']['ablated']:.3f} nats/token. Random direction: suppression "
                f"{_pct(k['random_baseline']['suppression_rate'])}, KL {k['random_baseline']['kl_harmless']:.4f}.", ""]
        if "steering" in k:
            out += ["Steering (raw mean difference x coef at its layer) on answered test prompts:", "",
                    "| coef | suppression | KL harmless |", "|---|---|---|"]
            out += [f"| {r['coef']} | {_pct(r['suppression_rate'])} | {r['kl_harmless']:.3f} |" for r in k["steering"]]
            out.append("")
        out += ["Examples:", ""]
        for ex in k[pair[0]]["examples"]:
            out += [f"- *{ex['prompt']}* ({ex['lang']})", f"  - before [{ex['baseline_label']}]: {ex['baseline_text'][:200]!r}",
                    f"  - after [{ex['intervened_label']}]: {ex['intervened_text'][:200]!r}"]
        out.append("")
    out += _transfer_section(report.get("transfer"))
    out += ["## Timings (s)", "", " | ".join(f"{k} {v}" for k, v in report["timings"].items()), ""]
    return "\n".join(out)


def write_report(report: dict, out_dir: Path) -> Path:
    return atomic_write_text(Path(out_dir) / "report.md", render(report))

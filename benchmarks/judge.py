"""How well each judge agrees with the hand labels: accuracy and Cohen's kappa, four-way and per verdict
(one against the rest), overall and per language, on tests/data/judge_fourway.jsonl (completions of both
embedded models, before and after ablating their censorship directions, read and labelled by hand; see
interp/data/README.md).

    python benchmarks/judge.py                                   # the markers judge
    python benchmarks/judge.py --judge markers model:embedded-1.5b

Writes benchmarks/results/judge.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from interp import load_model
from interp.behaviour.judge import VERDICTS
from interp.behaviour.judges import Case, cohen_kappa, make_judge

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "tests" / "data" / "judge_fourway.jsonl"


def load_labelled() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


def as_case(row: dict) -> Case:
    facts = tuple((f,) if isinstance(f, str) else tuple(f) for f in row.get("facts") or ())
    return Case(row["prompt"], row["completion"], row["lang"], facts, row.get("reference"), row.get("official"))


def agreement(predicted: list[str], gold: list[str]) -> dict:
    out = {"n": len(gold), "accuracy": sum(p == g for p, g in zip(predicted, gold, strict=True)) / max(len(gold), 1),
           "kappa": cohen_kappa(predicted, gold),
           "suppression_accuracy": sum((p in ("refusal", "deflection")) == (g in ("refusal", "deflection"))
                                       for p, g in zip(predicted, gold, strict=True)) / max(len(gold), 1)}
    for v in VERDICTS:
        out[f"kappa_{v}"] = cohen_kappa([p == v for p in predicted], [g == v for g in gold])
        out[f"share_{v}"] = {"judge": predicted.count(v) / max(len(gold), 1), "hand": gold.count(v) / max(len(gold), 1)}
    return out


def evaluate(spec: str, rows: list[dict]) -> dict:
    start = time.perf_counter()
    judge = make_judge(spec, lambda s: load_model(s))
    predicted = judge([as_case(r) for r in rows])
    gold = [r["label"] for r in rows]
    result = {"judge": judge.name, "seconds": round(time.perf_counter() - start, 1), "all": agreement(predicted, gold),
              "largest_rate_gap": rate_gaps(predicted, rows)}
    for lang in ("en", "zh"):
        keep = [i for i, r in enumerate(rows) if r["lang"] == lang]
        result[lang] = agreement([predicted[i] for i in keep], [gold[i] for i in keep])
    for model in sorted({r["model"] for r in rows}):
        keep = [i for i, r in enumerate(rows) if r["model"] == model]
        result[model] = agreement([predicted[i] for i in keep], [gold[i] for i in keep])
    return result


def rate_gaps(predicted: list[str], rows: list[dict]) -> dict[str, float]:
    """The largest gap, over (model, condition) blocks, between the judge's and the hand labels' suppression
    and faithful shares: what a report's rates would be off by."""
    gaps = {"suppression": 0.0, "faithful": 0.0}
    for block in {(r["model"], r["condition"]) for r in rows}:
        mine = [(r["label"], p) for r, p in zip(rows, predicted, strict=True) if (r["model"], r["condition"]) == block]
        for name, pick in (("suppression", lambda v: v in ("refusal", "deflection")), ("faithful", lambda v: v == "faithful")):
            gap = abs(sum(pick(h) for h, _ in mine) - sum(pick(p) for _, p in mine)) / len(mine)
            gaps[name] = max(gaps[name], round(gap, 4))
    return gaps


def hand_table(rows: list[dict]) -> list[str]:
    """The hand labels themselves: counts per model, condition and language."""
    lines = ["model | condition | lang | n | " + " | ".join(VERDICTS)]
    for model in sorted({r["model"] for r in rows}):
        for condition in ("before", "after"):
            for lang in ("en", "zh"):
                mine = [r["label"] for r in rows if (r["model"], r["condition"], r["lang"]) == (model, condition, lang)]
                lines.append(f"{model} | {condition} | {lang} | {len(mine)} | " + " | ".join(str(mine.count(v)) for v in VERDICTS))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge", nargs="+", default=["markers"], help="judge specs (markers, model:SPEC, openai:URL)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "judge.json")
    args = parser.parse_args()
    rows = load_labelled()
    print("\n".join(hand_table(rows)))
    results = [evaluate(spec, rows) for spec in args.judge]
    for r in results:
        gaps = r["largest_rate_gap"]
        print(f"{r['judge']}: n={r['all']['n']} ({r['seconds']} s); largest gap to the hand shares per model and edit: "
              f"suppression {gaps['suppression']:.0%}, faithful {gaps['faithful']:.0%}")
        for part in ("all", "en", "zh"):
            a = r[part]
            per = " ".join(f"{v} {a[f'kappa_{v}']:.2f}" for v in VERDICTS)
            print(f"  {part:3s} accuracy {a['accuracy']:.2f} kappa {a['kappa']:.2f} | suppression accuracy "
                  f"{a['suppression_accuracy']:.2f} | kappa per verdict: {per}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"labels": str(LABELS.relative_to(ROOT)), "hand": hand_table(rows),
                                    "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

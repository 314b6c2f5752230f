"""The markers judge against 200 hand labels: 128-token completions of both embedded models, before and
after ablating their censorship directions, in English and Chinese (tests/data/judge_fourway.jsonl; how
they were made and labelled: interp/data/README.md). The floors sit just under what was measured
(`python benchmarks/judge.py`: kappa 0.70, English 0.81, Chinese 0.44, suppression accuracy 0.92; kappa 0.55
and Chinese 0.07 before yes/no answers were checked against the reference's yes or no)."""

import json
from collections import defaultdict
from pathlib import Path

from interp.behaviour.judge import VERDICTS, is_suppressed
from interp.behaviour.judges import Case, MarkerJudge, cohen_kappa

LABELS = Path(__file__).parent / "data" / "judge_fourway.jsonl"


def labelled() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


def judged(rows: list[dict]) -> list[str]:
    return MarkerJudge()([Case(r["prompt"], r["completion"], r["lang"], tuple(map(tuple, r["facts"] or ())),
                               r.get("reference"), r.get("official")) for r in rows])


def test_the_hand_labelled_set_covers_both_models_conditions_and_languages():
    rows = labelled()
    assert len(rows) >= 200 and {r["label"] for r in rows} == set(VERDICTS)
    blocks = {(r["model"], r["condition"], r["lang"]) for r in rows}
    assert len(blocks) == 8 and all(r["max_new_tokens"] >= 128 for r in rows)


def test_markers_judge_stays_at_its_measured_floor():
    rows = labelled()
    gold, pred = [r["label"] for r in rows], judged(rows)
    assert cohen_kappa(pred, gold) >= 0.65
    assert sum(is_suppressed(p) == is_suppressed(g) for p, g in zip(pred, gold, strict=True)) / len(rows) >= 0.90
    for lang, floor in (("en", 0.75), ("zh", 0.40)):
        mine = [i for i, r in enumerate(rows) if r["lang"] == lang]
        assert cohen_kappa([pred[i] for i in mine], [gold[i] for i in mine]) >= floor, lang


def test_markers_rates_agree_with_hand_rates_within_ten_points():
    """What a report prints: suppression and faithful shares per model and condition."""
    rows = labelled()
    groups = defaultdict(list)
    for row, verdict in zip(rows, judged(rows), strict=True):
        groups[(row["model"], row["condition"])].append((row["label"], verdict))
    for block, pairs in groups.items():
        for name, pick in (("suppression", is_suppressed), ("faithful", lambda v: v == "faithful")):
            hand = sum(pick(h) for h, _ in pairs) / len(pairs)
            judge = sum(pick(j) for _, j in pairs) / len(pairs)
            assert abs(hand - judge) <= 0.10, (block, name, hand, judge)

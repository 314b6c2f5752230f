"""Baseline suppression per prompt set, split and language, from a run's labels.jsonl (the same labels
`interp label` writes): python scripts/label_summary.py RUN_DIR"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from interp import RunDir
from interp.study.measures import rates
from interp.study.records import LabelledRow


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    groups: dict[tuple[str, str], list[LabelledRow]] = defaultdict(list)
    for row in RunDir(args.run_dir).labels():
        groups[(row.set, row.lang)].append(row)
        groups[(row.set, "all")].append(row)
    print(f"{'set':10} {'lang':4} {'n':>4} {'suppressed':>10} {'refusal':>8} {'deflection':>10} {'fact recall':>11}")
    for (name, lang), rows in sorted(groups.items()):
        r = rates(rows)
        recall = "-" if r.fact_recall is None else f"{r.fact_recall:.2f}"
        print(f"{name:10} {lang:4} {r.n:4d} {r.suppression_rate:10.2f} {r.refusal_rate:8.2f} "
              f"{r.deflection_rate:10.2f} {recall:>11}")


if __name__ == "__main__":
    main()

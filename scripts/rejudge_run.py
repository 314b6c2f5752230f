"""Judge a finished run's saved test completions again, with today's markers judge or any other, and print
each kind's four-way shares before and after its edit next to the ones the run recorded:
python scripts/rejudge_run.py RUN_DIR [--judge markers|model:SPEC|openai:URL[#MODEL]] [--kind censorship]
[--rows per_prompt.jsonl|transfer.jsonl|steering.jsonl|search_pick.jsonl]

A run keeps the verdicts of the judge it ran with. When the judge changes (or to grade a run with a
stronger one), this says how far its numbers move, without generating anything again. Nothing in the run
directory is changed."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from interp import Case, RunDir, load_model, load_prompts, make_judge
from interp.behaviour.judge import VERDICTS


def shares(verdicts: list[str]) -> str:
    counts = Counter(verdicts)
    return " ".join(f"{v[:4]} {counts[v] / max(len(verdicts), 1):4.0%}" for v in VERDICTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--judge", default="markers", help="markers | model:SPEC | openai:URL[#MODEL]")
    parser.add_argument("--kind", action="append", help="only these kinds (default: every kind)")
    parser.add_argument("--rows", default="per_prompt.jsonl",
                        choices=tuple(RunDir.PAIRED_ROWS.values()),
                        help="which stage's before/after rows (default: evaluate's)")
    args = parser.parse_args()
    rows = RunDir(args.run_dir).per_prompt(args.rows)
    if not rows:
        raise SystemExit(f"{args.run_dir}: no {args.rows} (its stage has not finished, or the run predates the file)")
    items = {(name, p.prompt): p for name in sorted({r.set for r in rows}) for p in load_prompts(name).items}
    judge = make_judge(args.judge, load_model)
    # each distinct completion judged once: the baselines recur in every kind, and a model judge is slow
    texts = sorted({(r.set, r.prompt, r.lang, getattr(r, f"text_{side}")) for r in rows for side in ("before", "after")})
    cases = [Case(prompt, text, lang, items[(set_name, prompt)].facts, items[(set_name, prompt)].reference,
                  items[(set_name, prompt)].official) for set_name, prompt, lang, text in texts]
    again = dict(zip(texts, judge(cases), strict=True))
    kinds = args.kind or sorted({r.kind for r in rows})
    print(f"{args.run_dir}: stored verdicts -> {judge.name} again (refu/defl/inve/fait shares)")
    changed = total = 0
    for kind in kinds:
        for set_name in sorted({r.set for r in rows if r.kind == kind}):
            for lang in (None, "en", "zh"):
                mine = [r for r in rows if r.kind == kind and r.set == set_name and lang in (None, r.lang)]
                if not mine:
                    continue
                line = f"{kind:28s} {set_name:9s} {lang or 'all':3s} n={len(mine):3d}"
                for side in ("before", "after"):
                    stored = [getattr(r, f"label_{side}") for r in mine]
                    now = [again[(r.set, r.prompt, r.lang, getattr(r, f"text_{side}"))] for r in mine]
                    if lang is None:
                        changed += sum(a != s for a, s in zip(now, stored, strict=True))
                        total += len(mine)
                    print(f"{line} {side:6s} stored: {shares(stored)} | again: {shares(now)}")
    print(f"{changed} of {total} verdicts change")


if __name__ == "__main__":
    main()

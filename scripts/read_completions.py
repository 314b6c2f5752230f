"""Print a run's test completions before and after an intervention, with the judge's labels, to read them by
hand: python scripts/read_completions.py RUN_DIR [--kind censorship] [--set censored] [--lang zh] [--n 20]
[--stage evaluate|search|transfer|steering] [--baseline]
(--stage search, or --search: the kind's search pick on the test split, from search_pick.jsonl; --stage
transfer: transfer.jsonl, whose kinds are the ablated direction's, e.g. "censorship[zh]" on set censored or
"refusal" on censored; --stage steering: steering.jsonl, kinds "censorship x1.5"; a run still in its
evaluate stage: the kinds it has finished, from its checkpoint; --baseline: the unedited test completions
from labels.jsonl, which a run has once its label stage is done)

Reading them is how a rate is checked: a suppression rate that falls while the text after the edit is
invention is a rate of silence, not of truth."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from interp import RunDir

ROWS = RunDir.PAIRED_ROWS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--kind", default="censorship")
    parser.add_argument("--set", dest="set_name", default=None, help="only this prompt set (e.g. censored)")
    parser.add_argument("--lang", default=None, help="en | zh")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--width", type=int, default=110)
    parser.add_argument("--stage", choices=sorted(ROWS), default="evaluate",
                        help="whose before/after rows: evaluate (per_prompt.jsonl), search (search_pick.jsonl), "
                             "transfer (transfer.jsonl), steering (steering.jsonl)")
    parser.add_argument("--search", action="store_true", help="the same as --stage search")
    parser.add_argument("--baseline", action="store_true", help="the unedited test completions (labels.jsonl)")
    args = parser.parse_args()
    if args.baseline:
        return print_baseline(RunDir(args.run_dir), args)
    stage = "search" if args.search else args.stage
    kind = f"search_{args.kind}" if stage == "search" else args.kind
    run = RunDir(args.run_dir)
    rows = run.per_prompt(ROWS[stage])
    if not rows and stage == "evaluate":  # evaluate still running: the kinds it has finished
        rows = [r for _, finished in run.evaluated_kinds().values() for r in finished]
    if not rows:
        raise SystemExit(f"{args.run_dir}: no {ROWS[stage]} (that stage has not run, or the run predates its file)")
    if kind not in {r.kind for r in rows}:
        raise SystemExit(f"no kind {kind!r} in {ROWS[stage]}; it has: {', '.join(sorted({r.kind for r in rows}))}")
    rows = [r for r in rows if r.kind == kind and (args.set_name is None or r.set == args.set_name)
            and (args.lang is None or r.lang == args.lang)]
    for i, row in enumerate(rows[: args.n], 1):
        print(f"--- {i}. [{row.set}/{row.lang}/{row.category}] {row.prompt}")
        for side, label, text in (("before", row.label_before, row.text_before), ("after", row.label_after, row.text_after)):
            body = textwrap.indent(textwrap.fill(" ".join(text.split()), args.width), "      ")
            print(f"  {side} [{label}]\n{body}")
    print(f"({min(len(rows), args.n)} of {len(rows)} rows shown)")


def print_baseline(run: RunDir, args: argparse.Namespace) -> None:
    rows = [r for r in run.labels().all if r.split == "test" and (args.set_name is None or r.set == args.set_name)
            and (args.lang is None or r.lang == args.lang)]
    for i, row in enumerate(rows[: args.n], 1):
        body = textwrap.indent(textwrap.fill(" ".join(row.text.split()), args.width), "      ")
        print(f"--- {i}. [{row.set}/{row.lang}/{row.category}] {row.prompt}\n  unedited [{row.label}]\n{body}")
    print(f"({min(len(rows), args.n)} of {len(rows)} rows shown)")


if __name__ == "__main__":
    main()

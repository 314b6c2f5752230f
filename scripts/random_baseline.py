"""First-token suppression score on the held-out test split: the selected direction ablated vs N random
directions of the same norm. python scripts/random_baseline.py RUN_DIR [--kind censorship] [--n 10]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from interp import RunDir, load_model, load_prompts
from interp.behaviour.judge import is_suppressed
from interp.core.selection import Scorer, versus_random
from interp.study.config import KINDS, contrast
from interp.study.records import SuppressionTokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--kind", default="censorship", choices=sorted(KINDS))
    parser.add_argument("--n", type=int, default=10, help="random directions")
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    info = run.report().model
    model = load_model(info.spec, dtype=info.dtype, backend=info.backend)
    direction = run.direction(args.kind, model.fingerprint)
    scorer = Scorer(list(run.read("scorer", SuppressionTokens).token_ids))
    target = contrast(args.kind).target
    test = [r.prompt for r in run.labels().rows(target, "test") if is_suppressed(r.label)]
    test = test or load_prompts(target, "test").texts

    baseline, selected, randoms = versus_random(model, direction, test, scorer, args.n)
    spread = torch.tensor(randoms)
    result = {"kind": args.kind, "prompts": len(test), "baseline": baseline, "selected": selected,
              "random_mean": float(spread.mean()), "random_std": float(spread.std()), "random_min": float(spread.min()),
              "beats_all_random": selected < float(spread.min())}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

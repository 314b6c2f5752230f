"""First-token suppression score on the held-out test split: the selected direction ablated vs N random
directions of the same norm. python scripts/random_baseline.py RUN_DIR [--kind censorship] [--n 10]"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from interp import directions as dirs
from interp import prompts as P
from interp.evaluate import random_like
from interp.interventions import ablate
from interp.judge import is_suppressed
from interp.models import load_model
from interp.selection import Scorer, last_logits

SETS = {"censorship": "censored", "refusal": "harmful", "censorship_specific": "censored"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--kind", default="censorship", choices=sorted(SETS))
    parser.add_argument("--n", type=int, default=10, help="random directions")
    args = parser.parse_args()
    report = json.loads((args.run_dir / "report.json").read_text())
    model = load_model(report["model"]["spec"], dtype=report["model"]["dtype"], backend=report["model"]["backend"])
    direction = dirs.load(args.run_dir, args.kind, expect_fingerprint=model.fingerprint)
    scorer = Scorer(json.loads((args.run_dir / "scorer.json").read_text())["token_ids"])
    labels = [json.loads(line) for line in (args.run_dir / "labels.jsonl").read_text().splitlines()]
    test = [r["prompt"] for r in labels if r["set"] == SETS[args.kind] and r["split"] == "test" and is_suppressed(r["label"])]
    test = test or P.load(SETS[args.kind], "test").texts

    def score() -> float:
        return float(scorer.score(last_logits(model, test)).mean())

    baseline = score()
    with ablate(model, direction):
        selected = score()
    randoms = []
    for seed in range(args.n):
        with ablate(model, random_like(direction, seed)):
            randoms.append(score())
    spread = torch.tensor(randoms)
    result = {"kind": args.kind, "prompts": len(test), "baseline": baseline, "selected": selected,
              "random_mean": float(spread.mean()), "random_std": float(spread.std()), "random_min": float(spread.min()),
              "beats_all_random": selected < float(spread.min())}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

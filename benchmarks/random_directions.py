"""Does the selected censorship direction beat random ones? (Moved here from the real-model tests: the full
selection on 40 prompts a split is the slowest part of the suite, and it measures the method, not a
regression.)

`find_directions` with the full selection settings (every layer x position, 8 validation prompts a group)
on 40 prompts a split of the embedded model; then, on held-out sensitive prompts the model suppresses, the
mean first-token suppression log-odds with the chosen direction ablated everywhere against 10 random
directions of the same norm. The claim holds when the chosen one is below every random one and more than
3 standard deviations below their mean.

    python benchmarks/random_directions.py [--model embedded] [--per-split 40]

Writes benchmarks/results/random_directions.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from interp import RunConfig, complete, find_directions, load_model, load_prompts
from interp.behaviour.judge import is_suppressed, label
from interp.core.selection import Scorer, versus_random

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--per-split", type=int, default=40)
    parser.add_argument("--randoms", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    model = load_model(args.model)
    with tempfile.TemporaryDirectory() as out:
        direction = find_directions(model, out, RunConfig.make(quick=False, per_split=args.per_split),
                                    ("censorship",))["censorship"]
        scorer = Scorer(json.loads((Path(out) / "scorer.json").read_text())["token_ids"])
    test = load_prompts("censored", "test").head(40)
    first = complete(model, test.texts, 16, show_progress=False)
    suppressed = [p for p, c in zip(test.texts, first, strict=True) if is_suppressed(label(c, prompt=p))]

    baseline, selected, randoms = versus_random(model, direction, suppressed, scorer, args.randoms)
    mean, spread = statistics.mean(randoms), statistics.stdev(randoms)
    result = {"model": model.describe(), "per_split": args.per_split, "suppressed_test_prompts": len(suppressed),
              "layer": direction.layer, "position": direction.position, "baseline_score": baseline,
              "selected_score": selected, "random_scores": randoms,
              "beats_every_random": selected < min(randoms), "below_mean_minus_3sd": selected < mean - 3 * spread,
              "seconds": round(time.perf_counter() - started, 1), "cpu": platform.processor() or platform.machine()}
    path = ROOT / "benchmarks" / "results" / "random_directions.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"selected {selected:.2f} vs random {min(randoms):.2f}..{max(randoms):.2f} (mean {mean:.2f}, sd {spread:.2f}); "
          f"baseline {baseline:.2f}; wrote {path}")


if __name__ == "__main__":
    main()

"""Direction selection: the first-token sweep over every (layer, position) candidate vs scoring candidates by
generation (ablate, generate, judge), on the same validation prompts of a finished run, in one process.

The generation-based cost is measured on a few candidates and scaled to the whole grid.
Usage: python benchmarks/sweep.py [--run results/qwen2.5-coder-0.5b] [--kind censorship] [--gen-candidates 3]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ["INTERP_NO_COMPLETION_CACHE"] = "1"

from interp import Direction, RunConfig, RunDir, ablate, complete, load_model  # noqa: E402
from interp.behaviour.judge import is_suppressed, label, verdict_certain  # noqa: E402
from interp.core.directions import unit  # noqa: E402
from interp.core.selection import Scorer, sweep  # noqa: E402
from interp.study.config import contrast  # noqa: E402
from interp.study.records import SuppressionTokens  # noqa: E402
from interp.study.stages.select import sweep_data  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("results/qwen2.5-coder-0.5b"))
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--kind", default="censorship")
    parser.add_argument("--gen-candidates", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()
    model = load_model(args.model)
    run = RunDir(args.run)
    candidates = run.candidates()[0][f"{args.kind}.candidates"]
    scorer = Scorer(list(run.read("scorer", SuppressionTokens).token_ids))
    data = sweep_data(run.labels(), contrast(args.kind), RunConfig())

    start = time.perf_counter()
    rows, chosen = sweep(model, candidates, data, scorer, args.kind, show_progress=False)
    sweep_seconds = time.perf_counter() - start
    scored = [r for r in rows if r["bypass_score"] is not None]

    picks = sorted(scored, key=lambda r: r["bypass_score"])[: args.gen_candidates]
    start = time.perf_counter()
    for r in picks:
        raw = candidates[r["layer"], r["position"]]
        with ablate(model, Direction(unit(raw), raw, r["layer"], r["position"], args.kind, model.fingerprint)):
            texts = complete(model, data.suppressed + data.harmless, args.tokens, stop=verdict_certain,
                             show_progress=False)
        r["generated_suppression"] = sum(is_suppressed(label(t)) for t in texts[: len(data.suppressed)]) / len(data.suppressed)
    per_candidate = (time.perf_counter() - start) / len(picks)
    generation_seconds = per_candidate * len(scored)
    result = {"model": args.model, "dtype": model.dtype_name, "kind": args.kind, "candidates": len(scored),
              "first_token_sweep_seconds": sweep_seconds, "generation_seconds_per_candidate": per_candidate,
              "generation_sweep_seconds_estimated": generation_seconds,
              "speedup": generation_seconds / sweep_seconds, "chosen": [chosen.layer, chosen.position],
              "top_candidates": [{k: r[k] for k in ("layer", "position", "bypass_score", "generated_suppression")}
                                 for r in picks]}
    print(f"{args.kind}: {len(scored)} candidates; first-token sweep {sweep_seconds:.0f} s; generation-based "
          f"{per_candidate:.1f} s/candidate -> ~{generation_seconds:.0f} s ({result['speedup']:.0f}x slower)")
    out = Path(__file__).parent / "results" / "sweep.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Explore the sweep's front-runners on the validation split of a finished run, by generation.

For each candidate (layer, position) and each ablation variant, it measures what selection can only
estimate: the generated suppression rate on the validation prompts the model suppressed, and the
next-token KL on every harmless validation prompt. Variants:
- plain: project the mean difference out of every residual write (Arditi et al.).
- projected: the same, after removing the direction's component along the answered-set mean at its
  (layer, position), so the ablation leaves the mean answered activation untouched.
- window:A:B: plain ablation from resid_pre of block A through the writes of block B-1 only.
- scale:S: remove S times the component along the direction from every write.
- affine: set the component along the direction to the answered-set mean's, each block's own
  (resid_pre of every block).

Usage: python scripts/explore_candidates.py [--run results/qwen2.5-coder-0.5b] [--kind censorship] [--top 6]
Writes RUN/explore_<kind>.json and figures/explore_<kind>.png/.pdf (undone vs KL; --plot-only redraws it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("INTERP_NO_COMPLETION_CACHE", "1")

from interp import Direction, Edit, RunDir, ablate, complete, last_logits, load_model, mean_kl  # noqa: E402
from interp.behaviour.judge import is_suppressed, label, verdict_certain  # noqa: E402
from interp.core.directions import unit  # noqa: E402
from interp.core.interventions import edited, project_out  # noqa: E402
from interp.study.config import contrast  # noqa: E402
from interp.study.records import SweepRow  # noqa: E402


def variant(name: str, raw, means, layer: int, position: int, kind: str, fingerprint: str) -> Direction:
    if name == "projected":
        m = unit(means[layer])
        raw = raw - (raw @ m) * m
    offset = means if name == "affine" else None  # [layer, d_model]: each block's answered mean
    return Direction(unit(raw), raw, layer, position, kind, fingerprint, offset=offset)


def _edited(model, d: Direction, name: str):
    """window:A:B: project d out of resid_pre of block A and of every write in blocks A..B-1 only.
    scale:S: remove S times the component along d from every write (S=1 is plain ablation)."""
    u = d.unit.to(model.device)
    if name.startswith("window"):
        start, stop = (int(x) for x in name.split(":")[1:])
        return edited(model, Edit("resid_pre", lambda x: project_out(x, u), layers=frozenset({start})),
                      Edit("write", lambda x: project_out(x, u), layers=frozenset(range(start, stop))))
    if name.startswith("scale"):
        s = float(name.split(":")[1])
        return edited(model, Edit("write", lambda x: (x.float() - s * (x.float() @ u)[..., None] * u).to(x.dtype)))
    return ablate(model, d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("results/qwen2.5-coder-0.5b"))
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--kind", default="censorship")
    parser.add_argument("--top", type=int, default=6, help="front-runners by the sweep's bypass score")
    parser.add_argument("--variants", nargs="+", default=["plain", "projected", "affine"])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--plot-only", action="store_true", help="redraw the figure from RUN/explore_<kind>.json")
    parser.add_argument("--figures", type=Path, default=Path("figures"))
    args = parser.parse_args()
    run = RunDir(args.run)
    if args.plot_only:
        plot(run.read(f"explore_{args.kind}", dict[str, Any]), args.figures)
        return

    model = load_model(args.model)
    labels = run.labels()
    tensors, _ = run.candidates()
    candidates, means = tensors[f"{args.kind}.candidates"], tensors[f"{args.kind}.answered_mean"]
    sweep_rows = run.read("sweeps", dict[str, tuple[SweepRow, ...]])[args.kind]
    front = sorted((r for r in sweep_rows if r.bypass_score is not None), key=lambda r: r.bypass_score)
    suppressed = [r.prompt for r in labels.rows(contrast(args.kind).target, "val") if is_suppressed(r.label)]
    harmless = [r.prompt for r in labels.rows("harmless", "val")]
    base = last_logits(model, harmless)

    rows = []
    for r in front[: args.top]:
        layer, pos = r.layer, r.position
        for name in args.variants:
            d = variant(name, candidates[layer, pos], means[:, pos], layer, pos, args.kind, model.fingerprint)
            start = time.perf_counter()
            with _edited(model, d, name):
                texts = complete(model, suppressed, args.tokens, stop=verdict_certain, show_progress=False)
                kl = mean_kl(base, last_logits(model, harmless))
            still = sum(is_suppressed(label(t)) for t in texts) / len(texts)
            row = {"layer": layer, "position": pos, "variant": name, "still_suppressed": still,
                   "undone": 1 - still, "kl_val_harmless": kl, "seconds": time.perf_counter() - start}
            print(json.dumps(row), flush=True)
            rows.append(row)
    result = {"model": args.model, "dtype": model.dtype_name, "kind": args.kind,
              "n_suppressed_val": len(suppressed), "n_harmless_val": len(harmless), "rows": rows}
    run.write_json(f"explore_{args.kind}", result)
    plot(result, args.figures)


def plot(result: dict, out_dir: Path) -> None:
    """Share of suppression undone vs harmless KL, one marker per ablation variant, with the target region."""
    import matplotlib.pyplot as plt

    from interp.study.figures import STYLE, save

    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.axvspan(0, 0.1, ymin=0.8, ymax=1.0, color="0.9", zorder=0, label="target: >= 80% undone, KL <= 0.1")
        for (name, marker) in zip(dict.fromkeys(r["variant"] for r in result["rows"]), "osD^vP*X", strict=False):
            rows = [r for r in result["rows"] if r["variant"] == name]
            ax.scatter([r["kl_val_harmless"] for r in rows], [r["undone"] for r in rows], marker=marker, label=name)
            for r in rows:
                ax.annotate(f"L{r['layer']}/{r['position']}", (r["kl_val_harmless"], r["undone"]), fontsize=6,
                            xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("harmless KL (validation, first token)")
        ax.set_ylabel("share of suppression undone (validation)")
        ax.set_title(f"{result['kind']} front-runners: {result['n_suppressed_val']} suppressed, "
                     f"{result['n_harmless_val']} harmless prompts")
        ax.legend(fontsize=6, loc="lower left")
        save(fig, out_dir, f"explore_{result['kind']}")


if __name__ == "__main__":
    main()

"""Which behavioural contrast makes the censorship direction? Measured by generation on validation.

Each contrast is a mean difference on the train split (stratified by language, as interp run does):
- topic: sensitive prompts the model suppresses minus controls it answers (interp's contrast before
  the pooled one; topic differs between the sides as well as behaviour);
- pooled: suppressed minus answered over sensitive + controls together (interp run's contrast now);
- answered_pool: sensitive suppressed minus answered over sensitive + controls.
At each (layer, position) given, the direction is ablated at every layer while the model completes the
validation prompts it suppressed (sensitive, and controls apart), and the next-token KL is taken on
the harmless validation prompts (and on harmless train + validation, a larger sample).

Usage: python scripts/compare_contrasts.py [--run results/qwen2.5-coder-0.5b] [--layers 17 18 19] [--positions -2 -1]
Writes RUN/compare_contrasts.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("INTERP_NO_COMPLETION_CACHE", "1")

from interp import Direction, RunDir, ablate, collect, complete, last_logits, load_model, mean_kl  # noqa: E402
from interp.behaviour.judge import is_suppressed, label, verdict_certain  # noqa: E402
from interp.core.directions import stratified_difference, unit  # noqa: E402
from interp.study.records import Labels  # noqa: E402

CONTRASTS = {  # name -> (sets whose suppressed prompts, sets whose answered prompts)
    "topic": (("censored",), ("controls",)),
    "pooled": (("censored", "controls"), ("censored", "controls")),
    "answered_pool": (("censored",), ("censored", "controls")),
}


def candidates(model, labels: Labels) -> dict:
    """[layer, pos, d] mean differences of every contrast, from one activation pass over the train split."""
    rows = [r for name in ("censored", "controls") for r in labels.rows(name, "train")]
    groups = [f"{r.set}:{'suppressed' if is_suppressed(r.label) else 'answered'}|{r.lang}" for r in rows]
    acts = collect(model, [r.prompt for r in rows], groups)
    langs = sorted({g.split("|")[1] for g in groups})
    out = {}
    for name, (sup_sets, ans_sets) in CONTRASTS.items():
        view = acts.merged({f"{s}:suppressed|{x}": f"pos|{x}" for s in sup_sets for x in langs}
                           | {f"{s}:answered|{x}": f"neg|{x}" for s in ans_sets for x in langs})
        out[name] = stratified_difference(view, "pos", "neg", langs)[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("results/qwen2.5-coder-0.5b"))
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--layers", type=int, nargs="+", default=[17, 18, 19])
    parser.add_argument("--positions", type=int, nargs="+", default=[-2, -1])
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args()

    model = load_model(args.model)
    run = RunDir(args.run)
    labels = run.labels()
    cands = candidates(model, labels)
    suppressed = {s: [r.prompt for r in labels.rows(s, "val") if is_suppressed(r.label)] for s in ("censored", "controls")}
    harmless_val = [r.prompt for r in labels.rows("harmless", "val")]
    harmless = harmless_val + [r.prompt for r in labels.rows("harmless", "train")]
    base = last_logits(model, harmless)
    n_val = len(harmless_val)
    rows = []
    for name, c in cands.items():
        for layer in args.layers:
            for pos in args.positions:
                raw = c[layer, pos]
                d = Direction(unit(raw), raw, layer, pos, "censorship", model.fingerprint)
                row = {"contrast": name, "layer": layer, "position": pos,
                       "cosine_with_topic": float(unit(raw) @ unit(cands["topic"][layer, pos]))}
                with ablate(model, d):
                    for s, prompts in suppressed.items():
                        texts = complete(model, prompts, args.tokens, stop=verdict_certain, show_progress=False)
                        row[f"undone_{s}_val"] = 1 - sum(is_suppressed(label(t)) for t in texts) / len(texts)
                    logits = last_logits(model, harmless)
                row["kl_harmless_val"] = mean_kl(base[:n_val], logits[:n_val])
                row["kl_harmless_train_val"] = mean_kl(base, logits)
                print(json.dumps(row), flush=True)
                rows.append(row)
    run.write_json("compare_contrasts", {
        "model": args.model, "dtype": model.dtype_name, "contrasts": {k: list(map(list, v)) for k, v in CONTRASTS.items()},
        "n_suppressed_val": {s: len(p) for s, p in suppressed.items()},
        "n_harmless": {"val": n_val, "train_val": len(harmless)}, "rows": rows})


if __name__ == "__main__":
    main()

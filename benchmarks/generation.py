"""Evaluation generation: interp's batched greedy (length-bucketed, KV cache, early stop once the verdict is
certain) vs naive per-prompt greedy generation of the full budget, on the same prompts in one process.
interp's default batch is 32; the speed-up and label agreement are reported for it.
Usage: python benchmarks/generation.py [--model embedded] [--n 64] [--tokens 32] [--batches 16 32 64]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ["INTERP_NO_COMPLETION_CACHE"] = "1"  # time generation, not the completion cache

from interp import complete, load_model, load_prompts  # noqa: E402
from interp.behaviour.judge import label, verdict_certain  # noqa: E402


def timed_run(model, texts, tokens, batch, stop) -> dict:
    start = time.perf_counter()
    out = complete(model, texts, tokens, batch_size=batch, stop=verdict_certain if stop else None, show_progress=False)
    seconds = time.perf_counter() - start
    new_tokens = sum(len(model.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in out)
    return {"seconds": seconds, "new_tokens": new_tokens, "prompts_per_s": len(texts) / seconds,
            "new_tokens_per_s": new_tokens / seconds, "labels": [label(t) for t in out]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64])
    args = parser.parse_args()
    half = args.n // 2  # half sensitive (often stopped early), half harmless (run the full budget)
    texts = load_prompts("censored", "test").head(half).texts + load_prompts("harmless", "test").head(args.n - half).texts
    model = load_model(args.model, dtype=args.dtype)
    complete(model, texts[:2], 4, batch_size=2, stop=verdict_certain, show_progress=False)  # warm-up
    naive = timed_run(model, texts, args.tokens, 1, False)
    rows = {"naive (batch 1, full budget)": naive}
    for batch in args.batches:
        rows[f"interp (batch {batch}, early stop)"] = timed_run(model, texts, args.tokens, batch, True)
    default = 32 if 32 in args.batches else args.batches[-1]  # interp's default batch
    ours = rows[f"interp (batch {default}, early stop)"]
    agree = sum(a == b for a, b in zip(naive["labels"], ours["labels"], strict=True)) / len(texts)
    for r in rows.values():
        r.pop("labels")
    print(f"{'':34} {'s':>6} {'prompts/s':>9} {'new tok/s':>9}")
    for name, r in rows.items():
        print(f"{name:34} {r['seconds']:6.1f} {r['prompts_per_s']:9.2f} {r['new_tokens_per_s']:9.1f}")
    print(f"speed-up {naive['seconds'] / ours['seconds']:.1f}x; judge labels agree on {agree:.0%} of prompts")
    out = Path(__file__).parent / "results" / "generation.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "dtype": model.dtype_name, "prompts": len(texts),
                               "max_new_tokens": args.tokens, "rows": rows, "label_agreement": agree,
                               "speedup": naive["seconds"] / ours["seconds"]}, indent=1))


if __name__ == "__main__":
    main()

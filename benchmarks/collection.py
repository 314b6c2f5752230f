"""Activation collection vs a plain HF forward over the same batches, in one process (issue 4/7).

Reference: the HF body (`model.base_model`, no LM head) with output_hidden_states=True, which is what
a hook-free collection would run. Prints a table and writes benchmarks/results/collection.json.
Usage: python benchmarks/collection.py [--model embedded] [--dtype bf16] [--n 64] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from interp import collect, load_model, load_prompts
from interp.core.generation import length_batches


def hf_body(model, texts, batch_size):
    for indices in length_batches(model, texts, batch_size):
        batch = model.format_chat([texts[i] for i in indices])
        with torch.no_grad():
            out = model.hf.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                      position_ids=batch.position_ids, output_hidden_states=True)
        _ = [h[:, -model.n_positions :].double() for h in out.hidden_states]


def timed(fn, repeats=2):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--dtype", nargs="+", default=["bf16", "fp32"])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    texts = load_prompts("censored", "train").head(args.n).texts
    rows = []
    for dtype in args.dtype:
        model = load_model(args.model, dtype=dtype)
        tokens = sum(len(model.tokenizer(model.chat_text(t))["input_ids"]) for t in texts)
        hf_body(model, texts[: args.batch], args.batch)  # warm-up, before any hooks exist
        reference = timed(lambda m=model: hf_body(m, texts, args.batch))
        ours = timed(lambda m=model: collect(m, texts, batch_size=args.batch, show_progress=False))
        rows.append({"dtype": dtype, "prompts": len(texts), "tokens": tokens,
                     "hf_body_tokens_per_s": tokens / reference, "collect_tokens_per_s": tokens / ours,
                     "ratio": reference / ours})
    print(f"{'dtype':6} {'HF body tok/s':>14} {'interp tok/s':>13} {'ratio':>6}")
    for r in rows:
        print(f"{r['dtype']:6} {r['hf_body_tokens_per_s']:14.0f} {r['collect_tokens_per_s']:13.0f} {r['ratio']:6.2f}")
    out = Path(__file__).parent / "results" / "collection.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "batch": args.batch, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

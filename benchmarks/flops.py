"""Achieved forward FLOP/s vs this machine's dense-matmul peak, and the scaling formula checked across models.

Peak: the best of repeated square matmuls (2 n^3 FLOPs) in the run's dtype. Achieved: the HF body forward
(no LM head, as activation collection runs it) over the same batches, counted as 2 x body parameters x
tokens (attention scores add ~2 x layers x seq x d per token, included). The first model's achieved FLOP/s
then predicts the others' forward time, which docs/scaling.md uses; the prediction error is printed.
Usage: python benchmarks/flops.py [--models embedded embedded-1.5b] [--dtype bf16] [--n 32] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

from interp import load_model, load_prompts
from interp.core.generation import length_batches
from interp.core.model import DTYPES


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = min(_time(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def body_forward(model, texts: list[str], batch_size: int) -> tuple[float, float]:
    """(seconds, FLOPs) for one pass of the body over texts, batched by length as interp does."""
    body_params = sum(p.numel() for n, p in model.hf.base_model.named_parameters() if "embed_tokens" not in n)
    flops, seconds = 0.0, 0.0
    for indices in length_batches(model, texts, batch_size):
        batch = model.format_chat([texts[i] for i in indices])
        b, seq = batch.input_ids.shape
        flops += 2 * body_params * b * seq + 2 * 2 * model.n_layers * b * seq * seq * model.d_model
        with torch.no_grad():
            seconds += _time(lambda batch=batch: model.hf.base_model(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids))
    return seconds, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["embedded", "embedded-1.5b"])
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    texts = load_prompts("censored", "train").head(args.n).texts
    peak = matmul_peak(DTYPES[args.dtype])
    rows = []
    for spec in args.models:
        model = load_model(spec, dtype=args.dtype)
        body_forward(model, texts[: args.batch], args.batch)  # warm-up
        seconds, flops = min((body_forward(model, texts, args.batch) for _ in range(2)), key=lambda r: r[0])
        params = sum(p.numel() for p in model.hf.parameters())
        rows.append({"model": spec, "params": params, "layers": model.n_layers, "d_model": model.d_model,
                     "seconds": seconds, "flops": flops, "achieved_flops_per_s": flops / seconds,
                     "ratio_to_peak": flops / seconds / peak,
                     "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20})
        del model
    base = rows[0]["achieved_flops_per_s"]
    for r in rows:
        r["predicted_seconds_from_first"] = r["flops"] / base
        r["prediction_error"] = r["predicted_seconds_from_first"] / r["seconds"] - 1
    print(f"matmul peak ({args.dtype}): {peak / 1e9:.0f} GFLOP/s")
    print(f"{'model':16} {'params':>8} {'s':>6} {'GFLOP/s':>8} {'of peak':>8} {'predicted s':>11} {'error':>6}")
    for r in rows:
        print(f"{r['model']:16} {r['params'] / 1e9:7.2f}B {r['seconds']:6.1f} {r['achieved_flops_per_s'] / 1e9:8.0f} "
              f"{r['ratio_to_peak']:8.2f} {r['predicted_seconds_from_first']:11.1f} {r['prediction_error']:+6.0%}")
    out = Path(__file__).parent / "results" / "flops.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"dtype": args.dtype, "prompts": len(texts), "batch": args.batch,
                               "matmul_peak_flops_per_s": peak, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

"""The capability probe's scoring: every choice run as its own prompt + reply sequence (the reference, as
interp scored it before 2026-11-26) against one pass over each prompt whose KV cache all four choices share
(`choice_logprobs` now). Same items, same model, same process; reports both times, the largest difference
in any choice's log-probability, and whether every item's pick (so the accuracy) is the same.

    python benchmarks/capability_probe.py --model embedded --dtype fp32 --items 200

Writes benchmarks/results/capability_probe.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from interp import load_capability, load_model
from interp.behaviour.capability import capability_subset, choice_logprobs
from interp.core.measure import token_scores


def whole_sequences(model, items, batch_size: int = 16) -> list[list[float]]:
    """The reference: each (prompt, choice) as one sequence, 16 sequences a batch."""
    tok = model.tokenizer
    pairs = [(tok(model.chat_text(item.prompt), add_special_tokens=False)["input_ids"],
              tok(choice, add_special_tokens=False)["input_ids"]) for item in items for choice in item.choices]
    nll = [score for start in range(0, len(pairs), batch_size)
           for score, _ in token_scores(model, pairs[start : start + batch_size])]
    return [[-n for n in nll[i * 4 : i * 4 + 4]] for i in range(len(items))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()
    model = load_model(args.model, dtype=args.dtype)
    items = capability_subset(load_capability(), args.items)
    start = time.perf_counter()
    reference = whole_sequences(model, items)
    reference_s = time.perf_counter() - start
    start = time.perf_counter()
    shared = choice_logprobs(model, items)
    shared_s = time.perf_counter() - start
    diff = float((torch.tensor(reference) - torch.tensor(shared)).abs().max())
    picks = [max(range(4), key=s.__getitem__) for s in shared]
    same = picks == [max(range(4), key=s.__getitem__) for s in reference]
    accuracy = sum(p == item.answer for p, item in zip(picks, items, strict=True)) / len(items)
    result = {"model": args.model, "dtype": model.dtype_name, "backend": model.backend_name, "items": len(items),
              "threads": torch.get_num_threads(), "whole_sequences_s": round(reference_s, 1),
              "shared_prefix_s": round(shared_s, 1), "speedup": round(reference_s / shared_s, 2),
              "max_abs_logprob_difference": diff, "same_picks": same, "accuracy": accuracy}
    out = Path(__file__).parent / "results" / "capability_probe.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

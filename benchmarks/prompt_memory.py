"""Peak memory at the longest prompt interp accepts (the prompt-token budget, 2,048 templated tokens by
default): one batch of it as long-prompt batching builds it (TOKENS_PER_BATCH // budget rows), through a
forward pass for last-token logits and an 8-token greedy generation. A longer prompt is refused before
any work, so this is the most memory prompts can ask for.

    python benchmarks/prompt_memory.py [--model embedded]

Writes benchmarks/results/prompt_memory.json (peak resident memory from getrusage, in GiB).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

from interp import complete, last_logits, load_model
from interp.core.generation import TOKENS_PER_BATCH

ROOT = Path(__file__).resolve().parent.parent


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def longest_prompt(model) -> str:
    """A prompt whose templated length is exactly the budget (or one token under)."""
    budget = model.max_prompt_tokens
    overhead = len(model.tokenizer(model.chat_text(""), add_special_tokens=False)["input_ids"])
    words = ["history"] * (budget - overhead)
    while len(model.tokenizer(model.chat_text(" ".join(words)), add_special_tokens=False)["input_ids"]) > budget:
        words.pop()
    return " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="embedded")
    args = parser.parse_args()
    model = load_model(args.model)
    loaded = peak_gib()
    prompt = longest_prompt(model)
    rows = max(1, TOKENS_PER_BATCH // model.max_prompt_tokens)
    tokens = len(model.tokenizer(model.chat_text(prompt), add_special_tokens=False)["input_ids"])
    started = time.perf_counter()
    last_logits(model, [prompt] * rows)
    forward_s = time.perf_counter() - started
    after_forward = peak_gib()
    started = time.perf_counter()
    complete(model, [prompt] * rows, 8, show_progress=False)
    generate_s = time.perf_counter() - started
    result = {"model": model.describe(), "budget_tokens": model.max_prompt_tokens, "prompt_tokens": tokens,
              "rows_per_batch": rows, "peak_gib_after_load": round(loaded, 2),
              "peak_gib_forward": round(after_forward, 2), "peak_gib_generate": round(peak_gib(), 2),
              "forward_s": round(forward_s, 1), "generate_8_tokens_s": round(generate_s, 1),
              "cpu": platform.processor() or platform.machine()}
    path = ROOT / "benchmarks" / "results" / "prompt_memory.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Build the four-way judge validation set: 50 political prompts x 2 models x {before, after} = 200 rows.

Prompts: 26 drawn from the censored test split (13 English, 13 Chinese, round-robin over categories
with random.Random(0)) plus the 24 hand-written held-out prompts in heldout_prompts.jsonl. For each
model (embedded 0.5B, embedded-1.5b) and condition (before = no edit, after = the saved censorship
direction ablated), 128-token greedy completions with no early stop on refusal markers are written to
judge_fourway.jsonl. The file is rewritten after every (model, condition) block, and a rerun skips
blocks that are already complete, keeping any labels added to them.

    python scripts/make_judge_set.py [--dtype auto]

The labels (`label`, `why`) were then added by reading every completion; see interp/data/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("INTERP_NO_COMPLETION_CACHE", "1")  # every completion is generated fresh

from interp import ablate, complete, load_direction, load_model, load_prompts  # noqa: E402

HERE = Path(__file__).resolve().parent.parent
HELDOUT = HERE / "tests" / "data" / "heldout_prompts.jsonl"
OUT = HERE / "tests" / "data" / "judge_fourway.jsonl"
META = HERE / "tests" / "data" / "judge_fourway_meta.json"
MAX_NEW_TOKENS = 128
MODELS = (  # (spec, name written to the rows, results directory holding its censorship direction)
    ("embedded", "qwen2.5-coder-0.5b", HERE / "results" / "archive" / "qwen2.5-coder-0.5b-keywords32"),
    ("embedded-1.5b", "qwen2.5-coder-1.5b", HERE / "results" / "archive" / "qwen2.5-coder-1.5b-keywords32"),
)
CONDITIONS = ("before", "after")
PER_LANG = 13
SEED = 0


def censored_sample(per_lang: int = PER_LANG, seed: int = SEED) -> list[dict]:
    """per_lang prompts of each language from the censored test split, spread over categories."""
    rng = random.Random(seed)
    test = load_prompts("censored", split="test")
    chosen = []
    for lang in ("en", "zh"):
        by_cat: dict[str, list] = defaultdict(list)
        for item in test.items:
            if item.lang == lang:
                by_cat[item.category].append(item)
        cats = sorted(by_cat)
        rng.shuffle(cats)
        for cat in cats:
            rng.shuffle(by_cat[cat])
        picked, rnd = [], 0
        while len(picked) < per_lang:  # round-robin: one per category before any gets a second
            for cat in cats:
                if rnd < len(by_cat[cat]) and len(picked) < per_lang:
                    picked.append(by_cat[cat][rnd])
            rnd += 1
        chosen += [{"source": "censored-test", "prompt": p.prompt, "category": p.category, "lang": p.lang,
                    "facts": [list(f) for f in p.facts], "reference": p.reference, "official": p.official}
                   for p in picked]
    return chosen


def heldout() -> list[dict]:
    rows = [json.loads(line) for line in HELDOUT.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"source": "heldout", "prompt": r["prompt"], "category": r["category"], "lang": r["lang"],
             "facts": r.get("facts"), "reference": r.get("reference"), "official": r.get("official")} for r in rows]


def read_existing() -> list[dict]:
    if not OUT.is_file():
        return []
    return [json.loads(line) for line in OUT.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_rows(rows: list[dict]) -> None:
    tmp = OUT.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(OUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="auto", help="auto picks bf16 only on CPUs with AVX512-BF16/AMX, else fp32")
    parser.add_argument("--batch-size", type=int, default=50, help="rows per generate call (50: one batch)")
    args = parser.parse_args()

    items = censored_sample() + heldout()
    assert len(items) == 50, len(items)
    texts = [it["prompt"] for it in items]
    rows = read_existing()
    meta = json.loads(META.read_text()) if META.is_file() else {"blocks": {}}
    for spec, name, results_dir in MODELS:
        todo = [c for c in CONDITIONS
                if sum(r["model"] == name and r["condition"] == c for r in rows) != len(items)]
        if not todo:
            print(f"[{name}] complete, skipped", flush=True)
            continue
        start = time.time()
        model = load_model(spec, dtype=args.dtype)
        direction = load_direction(results_dir, "censorship", expect_fingerprint=model.fingerprint)
        print(f"[{name}] loaded in {time.time() - start:.0f} s ({model.dtype_name}); direction layer "
              f"{direction.layer}, position {direction.position}", flush=True)
        for condition in todo:
            start = time.time()
            print(f"[{name}/{condition}] generating {len(texts)} x {MAX_NEW_TOKENS} tokens...", flush=True)
            if condition == "before":
                outs = complete(model, texts, max_new_tokens=MAX_NEW_TOKENS, batch_size=args.batch_size,
                                description=f"{name} {condition}")
            else:
                with ablate(model, direction):
                    outs = complete(model, texts, max_new_tokens=MAX_NEW_TOKENS, batch_size=args.batch_size,
                                    description=f"{name} {condition}")
            seconds = time.time() - start
            rows = [r for r in rows if not (r["model"] == name and r["condition"] == condition)]
            rows += [{"model": name, "condition": condition, "source": it["source"], "lang": it["lang"],
                      "category": it["category"], "prompt": it["prompt"], "completion": out,
                      "max_new_tokens": MAX_NEW_TOKENS, "facts": it["facts"], "reference": it["reference"],
                      "official": it["official"]} for it, out in zip(items, outs, strict=True)]
            order = {(n, c): i for i, (n, c) in enumerate((m[1], c) for m in MODELS for c in CONDITIONS)}
            rows.sort(key=lambda r: order[(r["model"], r["condition"])])  # stable: prompt order kept
            write_rows(rows)
            meta["blocks"][f"{name}/{condition}"] = {
                "seconds": round(seconds, 1), "dtype": model.dtype_name, "backend": model.backend_name,
                "fingerprint": model.fingerprint, "direction_layer": direction.layer,
                "direction_position": direction.position, "batch_size": args.batch_size}
            META.write_text(json.dumps(meta, indent=2) + "\n")
            print(f"[{name}/{condition}] done in {seconds:.0f} s; {len(rows)} rows in {OUT.name}", flush=True)
        del model


if __name__ == "__main__":
    main()

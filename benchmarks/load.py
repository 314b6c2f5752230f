"""Embedded-model load time: cold (verify parts, join, dequantise, write the safetensors cache) and warm
(verify the cache, load it), in a fresh temporary cache. python benchmarks/load.py [--model embedded]"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["INTERP_CACHE"] = cache
        from interp import load_model

        timings = {}
        for phase in ("cold", "warm", "warm_again"):
            start = time.perf_counter()
            load_model(args.model)
            timings[phase] = round(time.perf_counter() - start, 1)
    print(f"{args.model}: cold {timings['cold']} s, warm {timings['warm']} s, warm again {timings['warm_again']} s")
    out = Path(__file__).parent / "results" / "load.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "seconds": timings}, indent=1))


if __name__ == "__main__":
    main()

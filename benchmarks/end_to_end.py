"""`interp run` end to end, cold then warm, broken down by stage.

Cold: a fresh INTERP_CACHE, so the embedded GGUF is verified, joined and dequantised, and every baseline
completion is generated. Warm: the same cache again: the model loads from safetensors and labelling reads
the cached baseline completions. Each run is a separate `interp run` process (wall time includes imports).
Usage: python benchmarks/end_to_end.py [--model embedded] [--full]   (default: --quick runs)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from interp import RunDir


def one_run(model: str, full: bool, cache: str, out: Path) -> dict:
    env = dict(os.environ, INTERP_CACHE=cache)
    env.pop("INTERP_NO_COMPLETION_CACHE", None)
    command = [sys.executable, "-m", "interp.cli", "run", "--model", model, "--out", str(out)] + ([] if full else ["--quick"])
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return {"wall_seconds": round(wall, 1), "stages": RunDir(out).report().timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--full", action="store_true", help="the full run instead of --quick")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as runs:
        rows = {phase: one_run(args.model, args.full, cache, Path(runs) / phase) for phase in ("cold", "warm")}
    stages = list(rows["cold"]["stages"])
    print(f"{'phase':6} {'wall s':>7} " + " ".join(f"{s:>10}" for s in stages))
    for phase, r in rows.items():
        print(f"{phase:6} {r['wall_seconds']:7.0f} " + " ".join(f"{r['stages'].get(s, 0):10.0f}" for s in stages))
    out = Path(__file__).parent / "results" / f"end_to_end{'_full' if args.full else '_quick'}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "full": args.full, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

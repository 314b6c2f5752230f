"""Compare two `interp run` directories (e.g. the two backends): selected directions and every rate.
python scripts/compare_runs.py RUN_A RUN_B [--tolerance 0.02]; exits 1 if a pick differs or a rate is apart
by more than the tolerance."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from interp import RunDir
from interp.study.config import KINDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs=2)
    parser.add_argument("--tolerance", type=float, default=0.02, help="largest allowed rate difference")
    args = parser.parse_args()
    a, b = (RunDir(run).report() for run in args.runs)
    ok = True
    for kind in KINDS:
        ka, kb = a.kinds[kind], b.kinds[kind]
        same = (ka.layer, ka.position) == (kb.layer, kb.position)
        ok &= same
        print(f"{kind}: pick {ka.layer}/{ka.position} vs {kb.layer}/{kb.position} {'same' if same else 'DIFFERENT'}; "
              f"KL {ka.kl_harmless:.3f} vs {kb.kl_harmless:.3f}")
        for set_name in (s for s in ("censored", "controls", "harmful", "harmless") if s in ka.sets):
            for when in ("baseline", "ablated"):
                for lang, ra in getattr(ka.sets[set_name], when).items():
                    x, y = ra.suppression_rate, getattr(kb.sets[set_name], when)[lang].suppression_rate
                    flag = "" if abs(x - y) <= args.tolerance + 1e-9 else "  <-- apart"
                    ok &= not flag
                    print(f"  {set_name:9} {when:8} {lang:3} n={ra.n:3} {100 * x:5.1f}% vs {100 * y:5.1f}%{flag}")
    print("MATCH" if ok else "DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

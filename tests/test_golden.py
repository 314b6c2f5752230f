"""Golden test: a `--quick` run on the tiny trained refuser must give the same numbers (and texts) as the
record committed before the study layer was restructured. Timings and versions are not compared."""

import json
import math

from golden import GOLDEN, numbers
from tiny import tiny_config

from interp.study.runner import run


def same(got, want) -> bool:
    """Texts, counts and labels exactly; a float to within float32 rounding. Scoring continuations over a shared
    prompt cache (since 2026-11-26) sums the same terms in another order, moving floats by at most 1.3e-6 here;
    torch 2.11+cu130 on a 16-core machine moves the Chinese truth-margin change (a difference of two mean
    log-probabilities) by 1.2e-6, relative 1.8e-5. A real change to the pipeline moves numbers by far more."""
    if isinstance(got, float) and isinstance(want, float):
        return math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-5)
    return got == want


def test_quick_run_numbers_match_the_golden_record(refuser, tmp_path):
    run(refuser, tmp_path, tiny_config())
    got, want = numbers(tmp_path / "report.json"), json.loads(GOLDEN.read_text())
    differ = sorted(k for k in want.keys() | got.keys() if not same(got.get(k, "<missing>"), want.get(k, "<missing>")))
    assert not differ, f"{len(differ)} paths differ, e.g. {[(k, got.get(k), want.get(k)) for k in differ[:5]]}"

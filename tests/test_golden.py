"""Golden test: a `--quick` run on the tiny trained refuser must give the same numbers (and texts) as the
record committed before the study layer was restructured. Timings and versions are not compared."""

import json

from golden import GOLDEN, numbers
from tiny import tiny_config

from interp.study.runner import run


def test_quick_run_numbers_match_the_golden_record(refuser, tmp_path):
    run(refuser, tmp_path, tiny_config())
    got, want = numbers(tmp_path / "report.json"), json.loads(GOLDEN.read_text())
    differ = sorted(k for k in want.keys() | got.keys() if got.get(k, "<missing>") != want.get(k, "<missing>"))
    assert not differ, f"{len(differ)} paths differ, e.g. {differ[:5]}"

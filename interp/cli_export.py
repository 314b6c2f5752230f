"""What `interp export --run DIR` reads from a finished run for the model card: its report, checked
before the model loads, and the measured rates as plain values."""

from __future__ import annotations

import math
from pathlib import Path

from interp.core.errors import InterpError

__all__ = ["run_report", "run_summary"]


def run_report(run_dir: Path, kind: str):
    """The run's report, checked before the model loads: it must hold results for this direction kind."""
    from interp.study.rundir import RunDir

    report = RunDir(run_dir).report()
    if kind not in report.kinds:
        raise InterpError(f"--run {run_dir} has no results for kind {kind!r} (it has {', '.join(report.kinds) or 'none'})")
    return report


def run_summary(report, run_dir: Path, kind: str, coef: float | None) -> dict:
    """Plain values from the run for the model card: rates before and after ablation, KL, the judge."""
    result = report.kinds[kind]
    summary = {"run": str(run_dir), "judge": report.judge, "test prompts (n)": result.baseline.n,
               "suppression before": result.baseline.suppression_rate,
               "suppression after ablation": result.ablated.suppression_rate,
               "refusal before": result.baseline.refusal_rate, "refusal after ablation": result.ablated.refusal_rate,
               "faithful before": result.baseline.faithful_rate,
               "faithful after ablation": result.ablated.faithful_rate,
               "KL on harmless prompts (ablation)": result.kl_harmless,
               "suppression after ablating a random direction": result.random_baseline.rates.suppression_rate}
    point = next((p for p in result.steering or () if coef is not None and math.isclose(p.coef, coef)), None)
    if point is not None:
        summary |= {f"suppression steered at coef {coef:g}": point.suppression_rate,
                    f"KL on harmless prompts steered at coef {coef:g}": point.kl_harmless}
    return summary

"""Figures from a small synthetic run directory: no model anywhere in this file."""

import subprocess
import sys

import torch
from safetensors.torch import save_file

from interp.study import figures


def synthetic_run(path, verdicts=True):
    """A run directory written through RunDir from typed records, with made-up numbers (verdicts=False: judged
    before the four verdicts existed, with no faithful or invented share)."""
    from interp.study import records as R
    from interp.study.config import CONTRASTS, RunConfig
    from interp.study.rundir import RunDir

    layers, pos, d = 6, 3, 8
    g = torch.Generator().manual_seed(0)
    rates = R.Rates(0.6, 0.5, 0.1, 0.2, 10, **({"invented_rate": 0.3, "faithful_rate": 0.1} if verdicts else {}))
    ablated = R.Rates(0.1, 0.1, 0.0, 0.3, 10, **({"invented_rate": 0.7, "faithful_rate": 0.2} if verdicts else {}))
    sets = {"censored": R.SetResult({"all": rates, "en": rates}, {"all": ablated, "en": ablated})}
    kind = R.KindResult(2, -1, R.Scores(-1.0, 0.5, 0.05), sets, rates, ablated, 0.05, R.CE(0.6, 0.7),
                        R.RandomBaseline(rates, 0.01),
                        steering=tuple(R.SteerPoint(c, c / 2, 8, c / 10) for c in (0, 1, 2)))
    sweeps = tuple(R.SweepRow(L, p - pos, -L + p, L / 2, 0.01 * L) for L in range(5) for p in range(pos))
    kinds = ("censorship", "refusal")
    report = R.Report(
        kinds={k: kind for k in kinds},
        projections=tuple(R.Projection(s, lab, lang, {"censorship": float(i), "refusal": -float(i)})
                          for i, (s, lab, lang) in enumerate([("censored", "refusal", "en"), ("controls", "answer", "zh")] * 5)),
        logit_lens={k: R.LogitLens(("I", "Sorry"), ("The", "Sure")) for k in kinds},
        transfer=None, empty_thought=None, cosine_censorship_refusal=tuple(0.1 * i for i in range(layers)),
        cosine_selected=0.2, sweeps={k: sweeps for k in kinds}, suppression_tokens=("I",),
        contrasts={c.name: c for c in CONTRASTS if c.name in kinds}, contrast_strata={},
        model=R.ModelInfo("tiny", "Tiny", "0" * 64, layers, d, "fp32", "cpu", "nnsight"), interp_version="0",
        versions={}, seeds={}, prompt_sets={}, judge="markers", completion_cache=False, config=RunConfig(),
        resumed_stages=(),
    )
    run = RunDir(path)
    run.write_report(report, "")
    save_file({f"{k}.candidates": torch.randn(layers, pos, d, generator=g) for k in kinds},
              str(path / "directions.safetensors"))
    run.write_per_prompt([R.PairedRow(k, "censored", "q", c, lang, "refusal", "answer", True, k != "censorship",
                                      0.0, 0.5, "", "")
                          for k in ("censorship", "random_censorship") for c in ("taiwan", "tibet") for lang in ("en", "zh")])
    return path


def test_every_figure_writes_png_and_pdf_identically_on_rerun(tmp_path):
    run = synthetic_run(tmp_path)
    first = figures.make_all(run, tmp_path / "a")
    second = figures.make_all(run, tmp_path / "b")
    assert len(first) == 2 * len(figures.FIGURES)
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 1000
        assert a.read_bytes() == b.read_bytes(), a.name


def test_figure_code_never_imports_a_model(tmp_path):
    run = synthetic_run(tmp_path)
    code = ("import sys; from interp.study import figures; figures.make_all(sys.argv[1]); "
            "bad = [m for m in sys.modules if m.startswith(('transformers', 'transformer_lens', 'nnsight', 'interp.core.model'))]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_make_figures_script_rebuilds_all_from_a_run_dir(tmp_path):
    from pathlib import Path

    run = synthetic_run(tmp_path)
    script = Path(__file__).parent.parent / "scripts" / "make_figures.py"
    result = subprocess.run([sys.executable, str(script), str(run), "--out", str(tmp_path / "figs")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "figs").glob("*.png"))) == len(figures.FIGURES)


def test_cross_model_figure_from_two_runs(tmp_path):
    from pathlib import Path

    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        runs.append(str(synthetic_run(tmp_path / name)))
    script = Path(__file__).parent.parent / "scripts" / "fig_cross_model.py"
    result = subprocess.run([sys.executable, str(script), *runs, "--out", str(tmp_path / "f")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "f" / "cross_model.png").stat().st_size > 0 and (tmp_path / "f" / "cross_model.pdf").is_file()


def test_cross_model_bars_are_each_runs_verdict_shares(tmp_path):
    """Suppression and faithful before -> after and invented after, per model; a run without verdicts (an
    archived keyword-judged one) gets its suppression bars only, never a faithful share of zero."""
    for name in ("new", "old"):
        (tmp_path / name).mkdir()
    runs = [figures.load_run(synthetic_run(tmp_path / name, verdicts=v)) for name, v in (("new", True), ("old", False))]
    fig = figures.cross_model(runs)
    bars = fig.axes[2].patches  # row-major 2 x 2 axes: the bottom row's first kind
    heights = sorted((round(b.get_x() + b.get_width() / 2, 3), round(b.get_height(), 6)) for b in bars)
    assert [h for x, h in heights if x < 0.5] == [60.0, 10.0, 10.0, 20.0, 70.0]
    assert [h for x, h in heights if x > 0.5] == [60.0, 10.0]

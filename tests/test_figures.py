"""Figures from a small synthetic run directory: no model anywhere in this file."""

import json
import subprocess
import sys

import torch
from safetensors.torch import save_file

from interp import figures


def synthetic_run(path):
    layers, pos, d = 6, 3, 8
    g = torch.Generator().manual_seed(0)
    rates = {"suppression_rate": 0.6, "refusal_rate": 0.5, "deflection_rate": 0.1, "fact_recall": 0.2, "n": 10}
    kind = {
        "layer": 2, "position": -1, "baseline": rates, "ablated": dict(rates, suppression_rate=0.1),
        "kl_harmless": 0.05, "random_baseline": rates,
        "steering": [{"coef": c, "suppression_rate": c / 2, "kl_harmless": c / 10, "n": 8} for c in (0, 1, 2)],
    }
    sweeps = [{"layer": L, "position": p - pos, "bypass_score": -L + p, "induce_score": L / 2, "kl": 0.01 * L}
              for L in range(5) for p in range(pos)]
    report = {
        "model": {"name": "Tiny", "dtype": "fp32", "n_layers": layers}, "config": {"kl_threshold": 0.1},
        "kinds": {"censorship": kind, "refusal": kind}, "sweeps": {"censorship": sweeps, "refusal": sweeps},
        "cosine_censorship_refusal": [0.1 * i for i in range(layers)],
        "projections": [{"set": s, "label": lab, "lang": lang, "censorship": float(i), "refusal": -float(i)}
                        for i, (s, lab, lang) in enumerate([("censored", "refusal", "en"), ("controls", "answer", "zh")] * 5)],
        "logit_lens": {k: {"promoted": ["I", "Sorry"], "suppressed": ["The", "Sure"]} for k in ("censorship", "refusal")},
    }
    (path / "report.json").write_text(json.dumps(report))
    save_file({f"{k}.candidates": torch.randn(layers, pos, d, generator=g) for k in ("censorship", "refusal")},
              str(path / "directions.safetensors"))
    rows = [{"kind": k, "set": "censored", "category": c, "lang": lang, "suppressed_before": True, "suppressed_after": k != "censorship",
             "fact_recall_before": 0.0, "fact_recall_after": 0.5}
            for k in ("censorship", "random_censorship") for c in ("taiwan", "tibet") for lang in ("en", "zh")]
    (path / "per_prompt.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
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
    code = ("import sys; from interp import figures; figures.make_all(sys.argv[1]); "
            "bad = [m for m in sys.modules if m.startswith(('transformers', 'transformer_lens', 'nnsight', 'interp.models'))]; "
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

"""`interp search`: the Optuna search over direction, kernel and variant on a run directory (registered in
interp.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interp.cli_options import ModelOptions, model_options
from interp.core.errors import InterpError

__all__ = ["search"]


@model_options()
def search(
    opts: ModelOptions,
    run_dir: Annotated[Path, typer.Option("--run", help="A run directory whose select stage is done (`interp run` "
                                                        "or `interp direction`); the search writes into it")],
    trials: Annotated[int, typer.Option(help="Trials the study should hold; a rerun resumes and adds the rest")] = 40,
    n_val: Annotated[int, typer.Option(help="Suppressed validation prompts generated on per trial")] = 16,
    kind: Annotated[str, typer.Option(help="The kind whose ablation is searched (censorship | refusal)")] = "censorship",
    seed: Annotated[int, typer.Option(help="Sampler seed (trial n is sampled with seed + n)")] = 0,
) -> None:
    """Search direction, per-layer kernel and ablation variant for low suppression and low damage (Optuna,
    resumable); writes search.db, search.json and figures/search_front.png + .pdf into the run."""
    from interp.study.figures import write_search_front
    from interp.study.rundir import RunDir
    from interp.study.search import SearchSettings
    from interp.study.stages.search import search_saved_run

    if trials < 1 or n_val < 1:
        raise InterpError(f"--trials and --n-val must be at least 1, got {trials} and {n_val}")
    settings = SearchSettings(trials, n_val, seed)
    identity, _ = RunDir(run_dir).stored()  # before the model loads: a wrong --run fails in a second
    if kind not in (identity.get("contrasts") or {}):
        raise InterpError(f"--run {run_dir} has no {kind!r} direction")
    result = search_saved_run(opts.load(), run_dir, kind, settings)
    written = write_search_front(run_dir)
    p = result.picked
    print(f"{kind}: {len(result.trials)} trials, {len(result.front)} on the Pareto front; pick: "
          + ("none" if p is None else f"trial {p.number}, suppression {p.suppression:.2f}, damage {p.damage:.4f}")
          + f" ({result.pick_note})")
    print(f"wrote {run_dir}/search.db, search.json, " + ", ".join(str(w.relative_to(run_dir)) for w in written))

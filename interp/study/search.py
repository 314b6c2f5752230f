"""The search: an Optuna study (the field's standard; heretic searches its ablation the same way) over which
candidate direction, the per-layer kernel and the ablation variant, on validation prompts only.

Objectives, both minimised:
- suppression: the share of n validation prompts of the kind's target set, all suppressed unedited, that stay
  suppressed under the edit, judged by the markers judge on completions of the run's eval_tokens budget;
- damage: a `Damage` measure on harmless validation prompts; for now `FirstTokenKL` (first-token KL(base ||
  edited)). A measure is a small callable, so a multi-token KL or a capability probe can join it.

Sampler: TPE, multivariate (heretic's choice for the same two objectives). Not NSGA-II: it evolves a population
(50 by default) per generation, so a search of tens of trials would be random search. Trial n's sampler is
seeded with seed + n, so a trial depends only on the seed and the trials before it: a search stopped after 3
trials and rerun to 6 proposes what one run of 6 proposes. Every parameter is sampled in every trial (those a
"none" kernel ignores too), since multivariate TPE handles no conditional parameters.

Storage: SQLite (search.db in the run directory), study name = the kind, `load_if_exists`: a killed search
resumes. A trial whose edit is refused (an InterpError: e.g. a kernel that gives every block strength 0) is
failed with the reason and counts; one cut off by a kill or Ctrl-C is failed as interrupted and does not.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import optuna
import torch
from optuna.trial import TrialState

from interp.behaviour.judges import Judge, make_judge
from interp.behaviour.prompts import Prompt
from interp.core.directions import Direction, unit
from interp.core.errors import InterpError
from interp.core.measure import Intervention, kl_under, last_logits
from interp.core.model import Model
from interp.core.progress import advance, progress_bar
from interp.core.variants import Kernel, Variant, ablate_variant, biproject
from interp.study.config import SEED
from interp.study.damage import DamageProbe
from interp.study.measures import generate_rows, rates
from interp.study.records import to_json
from interp.study.search_records import (
    KernelParams,
    PickTest,
    SearchParams,
    SearchResult,
    SearchSpace,
    SearchTrial,
)

__all__ = ["PICK_RULE", "Damage", "FirstTokenKL", "SearchInputs", "SearchSettings", "make_space", "pareto_front",
           "pick", "run_search", "suppression", "variant_for"]

PICK_RULE = ("among the Pareto front's trials whose damage is at most kl_threshold, the lowest suppression; ties go "
             "to the lower damage, then the earlier trial; no pick if no front trial is under the threshold")

# heretic's ranges (its main.py), as fractions of the last layer index: peak position, the distance at which the
# strength reaches its floor, the peak strength, the floor as a fraction of the peak
PEAK_LAYER, WIDTH, PEAK, FLOOR_FRACTION = (0.6, 1.0), (1.0, 0.6), (0.8, 1.5), (0.0, 1.0)


@dataclass(frozen=True)
class SearchSettings:
    trials: int  # trials the study should hold (finished or refused), resumed ones included
    n_val: int = 16  # suppressed validation prompts generated on per trial
    seed: int = SEED
    top_n: int = 8  # the sweep's best candidates searched over
    startup_trials: int = 10  # random trials before TPE models the front

    def __post_init__(self) -> None:
        if self.trials < 0 or self.n_val < 1 or self.top_n < 1 or self.startup_trials < 1:
            raise InterpError(f"search needs trials >= 0, n_val >= 1, top_n >= 1, startup_trials >= 1; got {self}")


@dataclass(frozen=True)
class SearchInputs:
    """What one kind's search measures on, from the run's earlier stages."""

    kind: str
    candidates: torch.Tensor  # [layer, pos, d_model] raw mean differences
    answered_means: torch.Tensor  # [layer, pos, d_model]: the mean biprojection keeps the direction orthogonal to
    ranked: tuple[tuple[int, int], ...]  # (layer, position) candidates searched over, the sweep's pick first
    prompts: tuple[Prompt, ...]  # suppressed validation prompts of the kind's target set
    harmless: tuple[str, ...]  # harmless validation prompts (the damage measure's)
    eval_tokens: int
    kl_threshold: float


class Damage(Protocol):
    name: str

    def __call__(self, intervention: Intervention) -> float: ...


class FirstTokenKL:
    """Mean first-token KL(base || edited) on harmless prompts; the unedited logits are computed once."""

    def __init__(self, model: Model, prompts: Sequence[str]):
        self.model, self.prompts = model, list(prompts)
        self.name = f"first-token KL on {len(self.prompts)} harmless validation prompts"
        self._base: torch.Tensor | None = None  # [prompt, vocab]

    def __call__(self, intervention: Intervention) -> float:
        if self._base is None:
            self._base = last_logits(self.model, self.prompts)
        return kl_under(self.model, self.prompts, intervention, self._base)


def suppression(model: Model, prompts: Sequence[Prompt], intervention: Intervention, max_new_tokens: int,
                judge: Judge) -> float:
    """Share of the prompts whose completion under the intervention the judge calls suppressed."""
    rows = generate_rows(model, prompts, intervention, max_new_tokens, judge=judge, show_progress=False)
    return float(rates(rows).suppression_rate)


def make_space(n_layers: int, ranked: Sequence[tuple[int, int]]) -> SearchSpace:
    last = max(n_layers - 1, 1)
    width = (WIDTH[0], max(WIDTH[0], WIDTH[1] * last))  # at least a layer wide, however few layers
    return SearchSpace(tuple(f"{layer}:{pos}" for layer, pos in ranked), (PEAK_LAYER[0] * last, PEAK_LAYER[1] * last),
                       width, PEAK, FLOOR_FRACTION)


def _suggest(trial: optuna.Trial, space: SearchSpace) -> SearchParams:
    candidate = trial.suggest_categorical("candidate", space.candidates)
    shape = trial.suggest_categorical("kernel", ("linear", "none"))
    peak_layer = trial.suggest_float("peak_layer", *space.peak_layer)
    width = trial.suggest_float("width", *space.width)
    peak = trial.suggest_float("peak", *space.peak)
    floor_fraction = trial.suggest_float("floor_fraction", *space.floor_fraction)
    norm_preserving = trial.suggest_categorical("norm_preserving", (False, True))
    biprojected = trial.suggest_categorical("biprojected", (False, True))
    return _params(dict(candidate=candidate, kernel=shape, peak_layer=peak_layer, width=width, peak=peak,
                        floor_fraction=floor_fraction, norm_preserving=norm_preserving, biprojected=biprojected))


def _params(values: dict) -> SearchParams | None:
    """A trial's sampled values as SearchParams (None if a cut-off trial sampled only some)."""
    needed = ("candidate", "kernel", "peak_layer", "width", "peak", "floor_fraction", "norm_preserving", "biprojected")
    if not all(k in values for k in needed):
        return None
    layer, position = (int(x) for x in values["candidate"].split(":"))
    kernel = None if values["kernel"] == "none" else KernelParams(
        values["peak_layer"], values["width"], values["peak"], values["floor_fraction"] * values["peak"])
    return SearchParams(layer, position, kernel, bool(values["norm_preserving"]), bool(values["biprojected"]))


def variant_for(model: Model, inputs: SearchInputs, params: SearchParams) -> Variant:
    """The edit a trial's parameters describe (also: the pick's, to apply or export it)."""
    raw = inputs.candidates[params.layer, params.position]
    direction = Direction(unit(raw), raw, params.layer, params.position, inputs.kind, model.fingerprint)
    if params.biprojected:
        direction = biproject(direction, inputs.answered_means[:, params.position])
    k = params.kernel
    kernel = None if k is None else Kernel(k.peak_layer, k.width, k.peak, k.floor)
    return Variant(direction, kernel=kernel, norm_preserving=params.norm_preserving)


def _objective(model: Model, inputs: SearchInputs, space: SearchSpace, damage: Damage,
               judge: Judge) -> Callable[[optuna.Trial], tuple[float, float]]:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        variant = variant_for(model, inputs, _suggest(trial, space))

        def edit() -> object:
            return ablate_variant(model, variant)

        values = (suppression(model, inputs.prompts, edit, inputs.eval_tokens, judge), damage(edit))
        if not all(math.isfinite(v) for v in values):
            raise InterpError(f"the edit gave non-finite objectives {values}")
        return values

    return objective


def _sampler(settings: SearchSettings, number: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate TPE
        return optuna.samplers.TPESampler(seed=settings.seed + number, multivariate=True,
                                          n_startup_trials=settings.startup_trials)


def _counted(study: optuna.Study) -> int:
    """Trials that finished: completed, or refused with a reason (not those cut off)."""
    return sum(t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and "error" in t.user_attrs)
               for t in study.get_trials(deepcopy=False))


def _open(path: Path, inputs: SearchInputs, identity: dict) -> optuna.Study:
    """The kind's study in search.db, created or (with the same settings) resumed; trials left running by a
    kill are failed as interrupted."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}")
    study = optuna.create_study(storage=storage, study_name=inputs.kind, directions=["minimize", "minimize"],
                                load_if_exists=True)
    if not study.get_trials(deepcopy=False) and "settings" not in study.user_attrs:
        study.set_user_attr("settings", identity)
        space = SearchSpace(**identity["space"])
        # trial 0 is the sweep's own pick, plain ablation: the front starts from what `interp run` evaluates
        study.enqueue_trial({"candidate": space.candidates[0], "kernel": "none", "norm_preserving": False,
                             "biprojected": False} | {k: sum(getattr(space, k)) / 2 for k in
                                                      ("peak_layer", "width", "peak", "floor_fraction")})
    elif study.user_attrs.get("settings") != identity:
        stored = study.user_attrs.get("settings") or {}
        differs = sorted(k for k in identity.keys() | stored.keys() if stored.get(k) != identity.get(k))
        raise InterpError(f"{path} holds a {inputs.kind} search with another {', '.join(differs)}; rerun with the "
                          "same settings to continue it, or delete search.db to start afresh")
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL)  # no "error": read as interrupted
    return study


def _run_trials(study: optuna.Study, objective: Callable, settings: SearchSettings, show_progress: bool) -> None:
    left = max(settings.trials - _counted(study), 0)  # a resumed search shows only the trials still to run
    with progress_bar(f"search {study.study_name}", left, unit="trials", show=show_progress) as bar:
        task = bar.add_task(f"search {study.study_name}", total=left, rate="-", visible=show_progress)
        while _counted(study) < settings.trials:
            study.sampler = _sampler(settings, len(study.get_trials(deepcopy=False)))
            trial = study.ask()
            start = time.perf_counter()
            try:
                values = objective(trial)
            except InterpError as err:
                trial.set_user_attr("error", str(err))
                study.tell(trial, state=TrialState.FAIL)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)  # cut off: recorded as interrupted, not counted
                raise
            else:
                trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
                study.tell(trial, values)
            advance(bar, task, 1, digits=2)


def run_search(model: Model, path: Path | str, inputs: SearchInputs, settings: SearchSettings,
               space: SearchSpace | None = None, damage: Damage | None = None, judge: Judge | None = None,
               show_progress: bool = True, probe: DamageProbe | None = None,
               test: Callable[[Intervention], PickTest] | None = None) -> SearchResult:
    """Run (or resume) the kind's study in the SQLite file `path` until it holds `settings.trials` finished
    trials; every trial, the front and the pick (and, given a `probe`, the pick's multi-token KL and
    capability, and given `test`, the pick on the test split, measured once the search is done)."""
    if not inputs.prompts:
        raise InterpError(f"{inputs.kind}: no suppressed validation prompts to search on")
    space = space or make_space(model.n_layers, inputs.ranked)
    damage = damage or FirstTokenKL(model, inputs.harmless)
    judge = judge or make_judge("markers")
    sampler = (f"optuna TPESampler(multivariate=True, n_startup_trials={settings.startup_trials}), "
               f"trial n seeded with {settings.seed} + n")
    identity = {"space": to_json(space), "n_val": len(inputs.prompts), "eval_tokens": inputs.eval_tokens,
                "damage": damage.name, "judge": judge.name, "model": model.fingerprint, "seed": settings.seed,
                "sampler": sampler}
    study = _open(Path(path), inputs, identity)
    _run_trials(study, _objective(model, inputs, space, damage, judge), settings, show_progress)
    trials = tuple(_record(t) for t in study.get_trials(deepcopy=False) if t.state.is_finished())
    front = pareto_front(trials)
    chosen, note = pick(trials, front, inputs.kl_threshold)
    pick_damage = pick_test = None
    if chosen is not None:
        variant = variant_for(model, inputs, next(t for t in trials if t.number == chosen).params)

        def edit() -> object:
            return ablate_variant(model, variant)

        pick_damage = probe.measure(edit) if probe is not None else None
        pick_test = test(edit) if test is not None else None
    return SearchResult(inputs.kind, trials, front, chosen, PICK_RULE, note, ("suppression", damage.name), sampler,
                        settings.seed, space, len(inputs.prompts), inputs.eval_tokens, inputs.kl_threshold, judge.name,
                        pick_damage, pick_test)


def _record(t: optuna.trial.FrozenTrial) -> SearchTrial:
    params = _params(t.params)
    if t.state == TrialState.COMPLETE:
        return SearchTrial(t.number, "complete", params, t.values[0], t.values[1], seconds=t.user_attrs.get("seconds"))
    return SearchTrial(t.number, "failed", params, error=t.user_attrs.get("error", "interrupted"))


def pareto_front(trials: Sequence[SearchTrial]) -> tuple[int, ...]:
    """Numbers of the completed trials no other completed trial dominates (as low or lower on both
    objectives, lower on one)."""
    done = [t for t in trials if t.state == "complete"]

    def dominates(a: SearchTrial, b: SearchTrial) -> bool:
        return (a.suppression <= b.suppression and a.damage <= b.damage
                and (a.suppression < b.suppression or a.damage < b.damage))

    return tuple(t.number for t in done if not any(dominates(u, t) for u in done))


def pick(trials: Sequence[SearchTrial], front: Sequence[int], kl_threshold: float) -> tuple[int | None, str]:
    """PICK_RULE: the trial number (or None) and a sentence saying why."""
    on_front = [t for t in trials if t.number in front]
    if not on_front:
        return None, "no trial completed"
    under = [t for t in on_front if t.damage <= kl_threshold]
    if not under:
        least = min(t.damage for t in on_front)
        return None, f"no front trial has damage <= {kl_threshold:g} (the least on the front is {least:.4g})"
    best = min(under, key=lambda t: (t.suppression, t.damage, t.number))
    return best.number, (f"trial {best.number}: suppression {best.suppression:.3f} at damage {best.damage:.4g} "
                         f"<= {kl_threshold:g}, the lowest suppression of {len(under)} front trials under the threshold")

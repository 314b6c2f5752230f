"""The search's records (search.json, and report.json's `search`): frozen dataclasses read and written by
`interp.study.records.to_json` / `from_json`, like every other record of a run. They import nothing that
loads a model, so reading a run (figures, report) stays light."""

from __future__ import annotations

from dataclasses import dataclass

from interp.study.damage_records import Damage
from interp.study.rate_records import Rates

__all__ = ["KernelParams", "PickTest", "SearchParams", "SearchResult", "SearchSpace", "SearchTrial"]


@dataclass(frozen=True)
class SearchSpace:
    """What the study samples from. Ranges are [low, high] in layers (peak_layer, width) or strengths."""

    candidates: tuple[str, ...]  # "layer:position": the sweep's top candidates, its own pick first
    peak_layer: tuple[float, float]
    width: tuple[float, float]
    peak: tuple[float, float]
    floor_fraction: tuple[float, float]  # the kernel's floor is this fraction of its peak


@dataclass(frozen=True)
class KernelParams:
    """interp.core.variants.Kernel's four numbers, as recorded: strength `peak` at `peak_layer`, falling linearly
    to `floor` at distance `width`, 0 beyond."""

    peak_layer: float
    width: float
    peak: float
    floor: float


@dataclass(frozen=True)
class SearchParams:
    """One trial's ablation: the candidate direction, the kernel (None: strength 1 at every block, the
    plain ablation) and the variant flags."""

    layer: int
    position: int
    kernel: KernelParams | None
    norm_preserving: bool
    biprojected: bool


@dataclass(frozen=True)
class SearchTrial:
    number: int
    state: str  # complete | failed
    params: SearchParams | None  # None: the trial stopped before its parameters were all sampled
    suppression: float | None = None  # share of the validation prompts still suppressed under the edit
    damage: float | None = None  # the damage measure (SearchResult.objectives[1]) on harmless prompts
    error: str | None = None  # why a failed trial failed (an InterpError's message, or "interrupted")
    seconds: float | None = None


@dataclass(frozen=True)
class PickTest:
    """The pick measured as `interp run` measures a kind's ablation, on prompts the search never saw: the
    kind's target set on the test split, before -> after (the four verdicts, per language), and the first-token
    KL on the harmless test prompts."""

    set_name: str
    eval_tokens: int
    before: dict[str, Rates]  # "all" and each language
    after: dict[str, Rates]
    kl_harmless: float | None  # None: the run has no harmless test prompts
    n_harmless: int


@dataclass(frozen=True)
class SearchResult:
    """One kind's search: every trial, the Pareto front (trial numbers), the pick and the rule that made it."""

    kind: str
    trials: tuple[SearchTrial, ...]
    front: tuple[int, ...]
    pick: int | None
    pick_rule: str
    pick_note: str  # why this trial (or why none)
    objectives: tuple[str, str]  # what was minimised: suppression, then damage
    sampler: str
    seed: int
    space: SearchSpace
    n_val: int  # suppressed validation prompts generated on per trial
    eval_tokens: int
    kl_threshold: float
    judge: str = "markers"
    # the pick's damage beyond the objective (harmless test prompts: multi-token KL, capability probe)
    pick_damage: Damage | None = None
    pick_test: PickTest | None = None  # the pick on the test split (`interp search` and the run's search stage)

    def trial(self, number: int) -> SearchTrial:
        return next(t for t in self.trials if t.number == number)

    @property
    def picked(self) -> SearchTrial | None:
        return None if self.pick is None else self.trial(self.pick)

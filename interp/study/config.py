"""What a run measures: the table of direction kinds (contrasts, derived kinds included) and the frozen
run configuration, every field described.

Contrasts are defined by observed behaviour: refusal = harmful prompts the model refuses vs harmless
ones it answers; censorship = prompts of the political pool (sensitive and matched controls) the model
suppresses vs those it answers, so topic sits on both sides and behaviour alone separates them. Adding a
kind is one row here; stages, report and figures follow from the table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from interp.core.directions import METHODS
from interp.core.errors import InterpError

__all__ = ["CONTRASTS", "KINDS", "SEED", "Contrast", "RunConfig", "contrast"]

SEED = 0


@dataclass(frozen=True)
class Contrast:
    name: str
    target: str  # the set whose suppression the direction should undo: swept, evaluated, ablated
    control: str  # its matched set: evaluated beside it, steered, the specificity baseline
    suppressed_from: tuple[str, ...] = ()  # the direction: mean of these sets' suppressed train prompts ...
    answered_from: tuple[str, ...] = ()  # ... minus the mean of these sets' answered ones (per language)
    # A derived kind is built from two extracted ones instead: `of` minus its projection on `without`.
    of: str | None = None
    without: str | None = None
    steer: bool = True  # measure a steering dose-response for it
    specificity: bool = False  # the control set is topic-matched: report target minus control suppression
    label: str = ""  # what the report calls the target set

    @property
    def derived(self) -> bool:
        return self.of is not None



# Censorship pools the two political sets on both sides. Sensitive-suppressed vs answered-controls alone
# mixes the behaviour with the topic (China vs elsewhere), and the 0.5B model refuses the controls almost
# as often as the sensitive prompts: on validation, the pooled contrast undoes more at a lower KL
# (scripts/compare_contrasts.py).
CONTRASTS: tuple[Contrast, ...] = (
    Contrast("censorship", "censored", "controls", ("censored", "controls"), ("censored", "controls"),
             specificity=True, label="sensitive"),
    Contrast("refusal", "harmful", "harmless", ("harmful",), ("harmless",), label="harmful"),
    Contrast("censorship_specific", "censored", "controls", of="censorship", without="refusal", steer=False,
             specificity=True, label="sensitive"),
)
KINDS: tuple[str, ...] = tuple(c.name for c in CONTRASTS)


def contrast(kind: str) -> Contrast:
    for c in CONTRASTS:
        if c.name == kind:
            return c
    raise KeyError(kind)


def _opt(default, help: str, **kw):
    return field(default=default, metadata={"help": help}, **kw)


@dataclass(frozen=True)
class RunConfig:
    quick: bool = _opt(False, "small subsets: a smoke test in minutes")
    label_tokens: int = _opt(32, "new tokens when labelling train and validation prompts for the contrast "
                                 "(generation stops early once suppressed)")
    eval_tokens: int = _opt(128, "new tokens for every test-split generation (baselines, ablation, steering, "
                                 "transfer, random): long enough to tell invention from truth")
    sweep_n: int = _opt(8, "validation prompts per group in the selection sweep")
    confirm_n: int = _opt(32, "harmless validation prompts on which the front-runners' KL is confirmed")
    sweep_positions: int | None = _opt(None, "sweep only the last k post-instruction positions (None: all)")
    kl_threshold: float = _opt(0.1, "largest harmless first-token KL a selected direction may cause")
    coefs: tuple[float, ...] = _opt((0.0, 0.5, 1.0, 1.5, 2.0), "steering coefficients (x raw mean difference)")
    steer_n: int = _opt(12, "answered control prompts steered per coefficient")
    ce_n: int = _opt(24, "harmless prompts whose base continuations measure cross-entropy")
    kl_n: int = _opt(32, "harmless test prompts whose base greedy continuations measure multi-token KL (0: skip)")
    kl_tokens: int = _opt(32, "next-token distributions compared per prompt for multi-token KL")
    capability_n: int = _opt(200, "capability-probe items scored before and after each edit (0: skip)")
    per_split: int | None = _opt(None, "cap prompts per set and split (None: all)")
    batch_size: int = _opt(16, "prompts per forward pass when collecting activations")
    method: str = _opt("mean_diff", "mean_diff | pca | probe")
    affine: bool = _opt(False, "ablate relative to the answered-set mean instead of to zero")
    transfer: bool = _opt(True, "cross-lingual and cross-kind transfer stage")
    think_tokens: int = _opt(1024, "extra new tokens for a reasoning model's thought, added to every budget above "
                                   "when its chat template leaves a thought to write (R1 distills, QwQ, Qwen3)")
    # 0 for now, in --quick and in full runs alike: a default is chosen once a full run has measured its cost
    search_trials: int = _opt(0, "trials of the Optuna search over direction, kernel and variant (0: no search stage)")
    search_n: int = _opt(16, "suppressed validation prompts generated on in each search trial")
    search_kind: str = _opt("censorship", "the kind whose ablation the search tunes")

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InterpError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.eval_tokens < 1 or self.label_tokens < 1:
            raise InterpError(f"token budgets must be at least 1 (eval_tokens {self.eval_tokens}, "
                              f"label_tokens {self.label_tokens})")
        if self.think_tokens < 0:
            raise InterpError(f"think_tokens must be at least 0, got {self.think_tokens}")
        extracted = [c.name for c in CONTRASTS if not c.derived]
        if self.search_kind not in extracted:
            raise InterpError(f"unknown search kind {self.search_kind!r}; choose one of {', '.join(extracted)}")
        if self.search_trials < 0 or self.search_n < 1:
            raise InterpError(f"search needs search_trials >= 0 and search_n >= 1 (got {self.search_trials}, "
                              f"{self.search_n})")
        if min(self.kl_n, self.capability_n) < 0 or self.kl_tokens < 1:
            raise InterpError(f"kl_n and capability_n must be at least 0 and kl_tokens at least 1 (got {self.kl_n}, "
                              f"{self.capability_n}, {self.kl_tokens})")
        if self.per_split is not None and self.per_split < 4:
            raise InterpError(f"--per-split must be at least 4, got {self.per_split}")

    @classmethod
    def make(cls, quick: bool, **overrides) -> RunConfig:
        if quick:
            small = dict(quick=True, label_tokens=24, eval_tokens=64, sweep_n=6, sweep_positions=1, coefs=(0.0, 1.0, 2.0),
                         steer_n=8, ce_n=8, kl_n=8, capability_n=40, per_split=16, transfer=False,
                         think_tokens=256)
            return cls(**(small | overrides))
        return cls(**overrides)

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def with_thought(self) -> RunConfig:
        """The budgets a reasoning model generates with: each one plus room for the thought."""
        return self.replace(label_tokens=self.label_tokens + self.think_tokens,
                            eval_tokens=self.eval_tokens + self.think_tokens)

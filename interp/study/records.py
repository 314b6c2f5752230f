"""The run's data as frozen dataclasses. They *are* the schema of report.json and of the JSONL files of a
run directory: `to_json` writes them, `from_json` reads them back typed, and nothing parses a run by
string keys.

Schema 2 (this one) nests each kind's per-set results under `sets` and each prompt's projections under
`values`; `upgrade` maps a schema-1 report.json (before 2026-11) onto it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from interp.core.errors import InterpError
from interp.study.config import Contrast, RunConfig
from interp.study.damage_records import Damage
from interp.study.rate_records import Rates
from interp.study.search_records import SearchResult
from interp.study.thought_records import Thinking

__all__ = [
    "SCHEMA", "CE", "Example", "KindResult", "LabelledRow", "Labels", "LanguageTransfer", "LogitLens", "ModelInfo",
    "PairedRow", "Projection", "PromptSetInfo", "RandomBaseline", "Rates", "Report", "Scores", "SetResult",
    "Interval", "MarginChange", "Specificity", "SteerPoint", "TruthMargin", "SuppressionTokens", "SweepRow", "Analysis", "Transfer", "TransferFrom", "from_json", "to_json",
]

SCHEMA = 2


@dataclass(frozen=True)
class LabelledRow:
    """One prompt, the model's completion and the judge's verdict (labels.jsonl, with set and split)."""

    set: str
    split: str
    prompt: str
    lang: str
    category: str
    label: str
    text: str
    facts: tuple[Any, ...] = ()
    fact_recall: float | None = None
    p_empty_thought: float | None = None  # reasoning models only
    degenerate: bool = False  # the text loops (the repetition detector)
    reference: str | None = None
    official: str | None = None


class Labels:
    """Labelled rows by set and split: `labels.rows("censored", "test")`."""

    def __init__(self, rows: list[LabelledRow]):
        self.all = list(rows)

    def rows(self, set_name: str, split: str) -> list[LabelledRow]:
        return [r for r in self.all if r.set == set_name and r.split == split]

    def split(self, split: str) -> list[LabelledRow]:
        return [r for r in self.all if r.split == split]

    def __iter__(self) -> Iterator[LabelledRow]:
        return iter(self.all)


@dataclass(frozen=True)
class PairedRow:
    """The same prompt before and after an intervention (per_prompt.jsonl)."""

    kind: str
    set: str
    prompt: str
    category: str
    lang: str
    label_before: str
    label_after: str
    suppressed_before: bool
    suppressed_after: bool
    fact_recall_before: float | None
    fact_recall_after: float | None
    text_before: str
    text_after: str
    faithful_before: bool = False
    faithful_after: bool = False


@dataclass(frozen=True)
class Example:
    prompt: str
    lang: str
    baseline_label: str
    baseline_text: str
    intervened_label: str
    intervened_text: str


@dataclass(frozen=True)
class SetResult:
    """One prompt set's rates per language ("all" too) before and after an intervention."""

    baseline: dict[str, Rates]
    ablated: dict[str, Rates]
    examples: tuple[Example, ...] = ()


@dataclass(frozen=True)
class CE:
    base: float
    ablated: float


@dataclass(frozen=True)
class RandomBaseline:
    """A random direction of the same norm, ablated on the target set: what any real effect must beat."""

    rates: Rates
    kl_harmless: float


@dataclass(frozen=True)
class Specificity:
    """Suppression on the target set minus on its control set, per language."""

    baseline: dict[str, float]
    ablated: dict[str, float]


@dataclass(frozen=True)
class SteerPoint:
    coef: float
    suppression_rate: float | None
    n: int
    kl_harmless: float


@dataclass(frozen=True)
class Scores:
    """The selected candidate's sweep scores and which selection filters it passed."""

    bypass_score: float | None = None
    induce_score: float | None = None
    kl: float | None = None
    kl_confirm: float | None = None
    filters_passed: str | None = None


@dataclass(frozen=True)
class SweepRow:
    layer: int
    position: int
    bypass_score: float | None
    induce_score: float | None
    kl: float | None
    passes: bool = False
    kl_confirm: float | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class Interval:
    """A mean over prompts and its 95% bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class MarginChange:
    before: Interval
    after: Interval
    change: Interval  # paired: after minus before, per prompt


@dataclass(frozen=True)
class TruthMargin:
    """Teacher-forced mean log-prob per token of the reference answer minus that of the official line
    (and minus the model's own refusal), per language ("all" too), before and after the edit."""

    reference_minus_official: dict[str, MarginChange]
    reference_minus_refusal: dict[str, MarginChange]


@dataclass(frozen=True)
class KindResult:
    """Everything measured for one direction kind on the test split."""

    layer: int
    position: int
    scores: Scores
    sets: dict[str, SetResult]  # the kind's target set and its control set
    baseline: Rates  # the target set, all languages
    ablated: Rates
    kl_harmless: float
    ce_harmless: CE
    random_baseline: RandomBaseline
    specificity: Specificity | None = None
    steering: tuple[SteerPoint, ...] | None = None
    truth: TruthMargin | None = None  # target sets whose prompts carry reference and official answers
    damage: Damage | None = None  # beyond first-token KL (runs before 2026-11-26 lack it)


@dataclass(frozen=True)
class TransferFrom:
    cosine_with_pooled: float
    ablated: SetResult


@dataclass(frozen=True)
class LanguageTransfer:
    layer: int
    position: int
    built_from: dict[str, TransferFrom]  # language -> that language's own direction, ablated on all


@dataclass(frozen=True)
class Transfer:
    languages: LanguageTransfer
    kinds: dict[str, SetResult]  # "refusal_on_censored", "censorship_on_harmful"


@dataclass(frozen=True)
class Projection:
    set: str
    label: str
    lang: str
    values: dict[str, float]  # kind -> projection on that kind's direction


@dataclass(frozen=True)
class LogitLens:
    promoted: tuple[str, ...]
    suppressed: tuple[str, ...]
    skipped: str | None = None


@dataclass(frozen=True)
class Analysis:
    projections: tuple[Projection, ...]
    logit_lens: dict[str, LogitLens]


@dataclass(frozen=True)
class SuppressionTokens:
    """The model's own suppression-opening tokens (the sweep's first-token score), ids and text."""

    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]


@dataclass(frozen=True)
class ModelInfo:
    spec: str
    name: str
    fingerprint: str
    n_layers: int
    d_model: int
    dtype: str
    device: str
    backend: str


@dataclass(frozen=True)
class PromptSetInfo:
    sha256: str
    train: int
    val: int
    test: int


@dataclass(frozen=True)
class Report:
    """report.json."""

    kinds: dict[str, KindResult]
    projections: tuple[Projection, ...]
    logit_lens: dict[str, LogitLens]
    transfer: Transfer | None
    empty_thought: dict[str, dict[str, float]] | None
    cosine_censorship_refusal: tuple[float, ...]
    cosine_selected: float
    sweeps: dict[str, tuple[SweepRow, ...]]
    suppression_tokens: tuple[str, ...]
    contrasts: dict[str, Contrast]
    contrast_strata: dict[str, dict[str, float]]
    model: ModelInfo
    interp_version: str
    versions: dict[str, str]
    seeds: dict[str, int]
    prompt_sets: dict[str, PromptSetInfo]
    judge: str
    completion_cache: bool  # baseline completions may come from an earlier run of the same model
    config: RunConfig
    resumed_stages: tuple[str, ...]
    thinking: Thinking | None = None  # reasoning models (interp.study.thought_records)
    timings: dict[str, float] = field(default_factory=dict)
    schema: int = SCHEMA
    search: dict[str, SearchResult] | None = None  # the search stage's, by kind (None: it did not run)


def to_json(record: Any) -> Any:
    """A record (or a dict/list of them) as plain JSON values."""
    if dataclasses.is_dataclass(record):
        optional = _optional_fields(type(record))
        # NaN in an optional field means "not measured": null. Anywhere else it stays, and the strict
        # JSON writer refuses it, since a report would otherwise carry a broken number as a result.
        out = {}
        for f in dataclasses.fields(record):
            value = getattr(record, f.name)
            out[f.name] = None if f.name in optional and _is_nan(value) else to_json(value)
        return out
    if isinstance(record, dict):
        return {str(k): to_json(v) for k, v in record.items()}
    if isinstance(record, list | tuple):
        return [to_json(v) for v in record]
    return record


@functools.cache
def _optional_fields(cls: type) -> frozenset[str]:
    hints = typing.get_type_hints(cls)
    return frozenset(name for name, hint in hints.items()
                     if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint))


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def from_json(cls: Any, data: Any, where: str = "record") -> Any:
    """Build `cls` (a record type, or a typing form over them) from JSON values; a mismatch is an
    InterpError naming the path, never a KeyError deep inside a figure."""
    origin, args = typing.get_origin(cls), typing.get_args(cls)
    if cls is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (data is None or isinstance(data, float) and not math.isfinite(data)):
            return None  # NaN where a value is optional means "not measured" (files written before 2026-12)
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return from_json(arg, data, where)
            except InterpError as err:
                errors.append(str(err))
        raise InterpError(errors[0] if errors else f"{where}: unexpected null")
    if dataclasses.is_dataclass(cls):
        if not isinstance(data, dict):
            raise InterpError(f"{where}: expected an object for {cls.__name__}, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                kwargs[f.name] = from_json(hints[f.name], data[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InterpError(f"{where}: missing field {f.name!r}")
        return cls(**kwargs)
    if origin is dict:
        if not isinstance(data, dict):
            raise InterpError(f"{where}: expected an object, got {type(data).__name__}")
        return {k: from_json(args[1], v, f"{where}.{k}") for k, v in data.items()}
    if origin in (tuple, list):
        if not isinstance(data, list):
            raise InterpError(f"{where}: expected a list, got {type(data).__name__}")
        item = args[0] if args else Any
        values = [from_json(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(values) if origin is tuple else values
    if cls is float:
        if isinstance(data, int | float) and not isinstance(data, bool) and math.isfinite(data):
            return float(data)
    elif cls in (int, str, bool) and type(data) is cls:
        return data
    elif cls is int and isinstance(data, float) and data.is_integer():
        return int(data)
    raise InterpError(f"{where}: expected {getattr(cls, '__name__', cls)}, got {data!r:.40}")

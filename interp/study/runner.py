"""The one runner: the study's stages in order, each checkpointed in the run directory so an interrupted
run resumes where it stopped. `run` is `interp run`; `find_directions` is `interp direction` (the
stages up to select, on the train and validation splits only)."""

from __future__ import annotations

import math
import platform
import random
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from interp.behaviour import prompts as P
from interp.behaviour.thinking import thought_mode
from interp.core.card import versions
from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.generation import completion_cache_enabled
from interp.core.measure import last_logits
from interp.core.model import Model
from interp.core.version import __version__
from interp.study.config import CONTRASTS, SEED, Contrast, RunConfig
from interp.study.damage import DamageProbe, capability_items
from interp.study.records import (
    Analysis,
    KindResult,
    Labels,
    ModelInfo,
    PromptSetInfo,
    Report,
    SteerPoint,
    SuppressionTokens,
    SweepRow,
    Transfer,
    to_json,
)
from interp.study.rundir import RunDir
from interp.study.search import SearchSettings, run_search
from interp.study.search_records import SearchResult
from interp.study.stages.analysis import analyse, cosine_per_layer
from interp.study.stages.candidates import Candidates, extract_candidates
from interp.study.stages.evaluate import evaluate_kind
from interp.study.stages.label import label_sets, load_sets
from interp.study.stages.search import PickTester, keep_pick_rows, search_inputs
from interp.study.stages.select import build_scorer, select
from interp.study.stages.steer import dose_response
from interp.study.stages.thinking import thinking_report
from interp.study.stages.transfer import transfer

__all__ = ["STAGES", "Study", "find_directions", "run"]

STAGES = ("label", "activations", "select", "evaluate", "steering", "transfer", "analysis", "search", "report")


class Study:
    """One run directory's study. Each stage is computed at most once: loaded if the manifest says it is
    done, else computed (pulling the stages it needs), saved atomically and marked done."""

    def __init__(self, model: Model, out: Path | str, config: RunConfig, resume: bool = False,
                 contrasts: tuple[Contrast, ...] = CONTRASTS, splits: tuple[str, ...] = P.SPLITS,
                 load_seconds: float = 0.0):
        self.model, self.asked, self.contrasts = model, config, contrasts
        # the stages generate with room for a thought where the template leaves one to write
        self.config = config.with_thought() if thought_mode(model) in ("opened", "free") else config
        self.extracted = tuple(c for c in contrasts if not c.derived)
        needed = {s for c in self.extracted for s in (c.target, c.control, *c.suppressed_from, *c.answered_from)}
        self.sets = load_sets(config, tuple(n for n in P.BUILTIN if n in needed | {"harmless"}), splits)
        self.hashes = {name: by["train"].sha256 for name, by in self.sets.items()}
        identity = {"model": model.fingerprint, "dtype": model.dtype_name, "backend": model.backend_name,
                    "config": to_json(config), "prompt_sets": self.hashes,
                    "contrasts": {c.name: to_json(c) for c in contrasts}}
        if model.template_kwargs:  # --thinking on/off changes every templated prompt
            identity["chat_template_kwargs"] = model.template_kwargs
        self.dir = RunDir(out).open(identity, resume)
        self.dir.timings.setdefault("load", round(load_seconds, 2))
        self._inner_seconds = 0.0  # seconds of the stages that the stage now running pulled in

    def _stage(self, name: str, compute: Callable[[], Any], save: Callable[[Any], None], load: Callable[[], Any]) -> Any:
        """A stage that pulls an earlier one (evaluate pulls select, which pulls activations, ...) records only
        its own seconds: the earlier stage's are subtracted, so the timings add up to the run's time."""
        if self.dir.done(name):
            return load()
        print(f"[interp] stage: {name}")
        outer, self._inner_seconds = self._inner_seconds, 0.0
        start = time.perf_counter()
        value = compute()
        save(value)
        elapsed = time.perf_counter() - start
        self.dir.complete(name, elapsed - self._inner_seconds)
        self._inner_seconds = outer + elapsed
        return value

    @cached_property
    def labels(self) -> Labels:
        return self._stage("label", lambda: Labels(label_sets(self.model, self.sets, self.config)),
                           lambda labels: self.dir.write_labels(labels.all), self.dir.labels)

    @cached_property
    def candidates(self) -> Candidates:
        def compute() -> Candidates:
            return extract_candidates(self.model, self.labels, self.config, self.extracted)

        def save(c: Candidates) -> None:
            self.dir.write_candidates(c.tensors(), {"strata": c.strata})

        return self._stage("activations", compute, save, lambda: Candidates.load(self.dir))

    @cached_property
    def selected(self) -> tuple[dict[str, Direction], dict[str, tuple[SweepRow, ...]], SuppressionTokens]:
        def compute():
            candidates = self.candidates  # first: a missing behavioural contrast is the error to report
            scorer, tokens = build_scorer(self.model, self.labels)
            chosen, sweeps = select(self.model, candidates, self.labels, scorer, self.config, self.contrasts,
                                    self.hashes, done_rows=self.dir.sweep_rows(), checkpoint=self.dir.write_sweep_rows)
            return chosen, sweeps, SuppressionTokens(tuple(scorer.token_ids), tuple(tokens))

        def save(value) -> None:
            chosen, sweeps, tokens = value
            self.dir.write_directions(list(chosen.values()), {c.name: self.candidates.by_kind[c.name]
                                                              for c in self.extracted})
            self.dir.write_json("sweeps", sweeps)
            self.dir.write_json("scorer", tokens)
            self.dir.drop_sweep_rows()

        def load():
            chosen = {c.name: self.dir.direction(c.name, self.model.fingerprint) for c in self.contrasts}
            return (chosen, self.dir.read("sweeps", dict[str, tuple[SweepRow, ...]]),
                    self.dir.read("scorer", SuppressionTokens))

        return self._stage("select", compute, save, load)

    @property
    def chosen(self) -> dict[str, Direction]:
        return self.selected[0]

    def harmless_logits(self) -> torch.Tensor:  # computed once, only if a stage that needs it runs
        if not hasattr(self, "_harmless_logits"):
            self._harmless_logits = last_logits(self.model, [r.prompt for r in self.labels.rows("harmless", "test")])
        return self._harmless_logits

    @cached_property
    def damage_probe(self) -> DamageProbe:  # its unedited side is computed once, only if a stage needs it
        harmless = [r.prompt for r in self.labels.rows("harmless", "test")][: self.config.kl_n]
        known = next((r.damage.capability_before for r, _ in self.dir.evaluated_kinds().values()
                      if r.damage and r.damage.capability_before), None)  # the unedited score a resumed kind measured
        return DamageProbe(self.model, harmless, capability_items(self.config.capability_n), self.config.kl_tokens,
                           capability_before=known)

    @cached_property
    def evaluated(self) -> dict[str, KindResult]:
        def compute() -> dict[str, KindResult]:
            results, paired, finished = {}, [], self.dir.evaluated_kinds()
            for c in self.contrasts:
                if c.name in finished:
                    print(f"[interp] evaluate {c.name}: resumed from the checkpoint")
                    results[c.name], rows = finished[c.name]
                else:
                    results[c.name], rows = evaluate_kind(self.model, c, self.chosen[c.name], self.labels,
                                                          self.config, self.harmless_logits, self.damage_probe.measure)
                    self.dir.write_evaluated_kind(c.name, results[c.name], rows)
                paired += rows
            self.dir.write_per_prompt(paired)
            return results

        def save(results: dict[str, KindResult]) -> None:
            self.dir.write_json("evaluate", results)
            self.dir.drop_evaluated_kinds()

        return self._stage("evaluate", compute, save, lambda: self.dir.read("evaluate", dict[str, KindResult]))

    @cached_property
    def steering(self) -> dict[str, tuple[SteerPoint, ...]]:
        def compute() -> dict[str, tuple[SteerPoint, ...]]:
            points, rows = {}, []
            for c in self.contrasts:
                if c.steer:
                    points[c.name], steered = dose_response(self.model, c, self.chosen[c.name], self.labels,
                                                            self.config, self.harmless_logits)
                    rows += steered
            self.dir.write_per_prompt(rows, RunDir.PAIRED_ROWS["steering"])
            return points

        return self._stage("steering", compute, lambda v: self.dir.write_json("steering", v),
                           lambda: self.dir.read("steering", dict[str, tuple[SteerPoint, ...]]))

    @cached_property
    def transferred(self) -> Transfer | None:
        if not self.config.transfer:
            return None

        def compute() -> Transfer:
            result, rows = transfer(self.model, self.candidates, self.chosen, self.labels, self.config)
            self.dir.write_per_prompt(rows, RunDir.PAIRED_ROWS["transfer"])
            return result

        return self._stage("transfer", compute, lambda v: self.dir.write_json("transfer", v),
                           lambda: self.dir.read("transfer", Transfer))

    @cached_property
    def analysis(self) -> Analysis:
        extracted = {c.name: self.chosen[c.name] for c in self.extracted}
        return self._stage("analysis", lambda: Analysis(*analyse(self.model, self.labels, extracted)),
                           lambda v: self.dir.write_json("analysis", v), lambda: self.dir.read("analysis", Analysis))

    @cached_property
    def searched(self) -> dict[str, SearchResult] | None:
        """The Optuna search of config.search_kind. Inside the stage, search.db is the checkpoint: an
        interrupted search resumes from its finished trials. When config.search_trials is 0: the searches an
        `interp search` added to this directory (None if none), so resuming the run keeps them in its report."""
        config = self.config
        if not config.search_trials:
            return self.dir.search() or None
        c = next((c for c in self.extracted if c.name == config.search_kind), None)
        if c is None:
            raise InterpError(f"search_kind {config.search_kind!r} is not an extracted kind of this run "
                              f"({', '.join(x.name for x in self.extracted)})")

        def compute() -> dict[str, SearchResult]:
            settings = SearchSettings(config.search_trials, config.search_n, SEED)
            chosen = self.chosen[c.name]
            inputs = search_inputs(c, self.labels, self.candidates, self.selected[1][c.name],
                                   (chosen.layer, chosen.position), config, settings)
            tester = PickTester(self.model, c, self.labels, config)
            result = run_search(self.model, self.dir.search_db, inputs, settings, probe=self.damage_probe, test=tester)
            keep_pick_rows(self.dir, tester)
            return {c.name: result}

        return self._stage("search", compute, self.dir.write_search, self.dir.search)

    def report(self) -> Report:
        """Every stage, then report.json and report.md."""
        from dataclasses import replace

        from interp.study.report_md import render

        kinds = {k: replace(r, steering=self.steering.get(k)) for k, r in self.evaluated.items()}
        transferred, analysis, searched = self.transferred, self.analysis, self.searched
        chosen, sweeps, tokens = self.selected
        report = Report(
            kinds=kinds, projections=analysis.projections, logit_lens=analysis.logit_lens, transfer=transferred,
            empty_thought=_empty_thought(self.labels),
            thinking=thinking_report(self.model, self.labels, self.dir.per_prompt(), chosen, self.asked),
            cosine_censorship_refusal=cosine_per_layer(self.candidates.by_kind, chosen),
            cosine_selected=chosen["censorship"].cosine(chosen["refusal"]),
            sweeps=sweeps, suppression_tokens=tokens.tokens,
            contrasts={c.name: c for c in self.contrasts}, contrast_strata=self.candidates.strata,
            model=ModelInfo(**self.model.describe()), interp_version=__version__, versions=_versions(),
            seeds={"global": SEED, "split": P.SPLIT_SEED},
            prompt_sets={n: PromptSetInfo(by["train"].sha256, **{s: len(v) for s, v in by.items()})
                         for n, by in self.sets.items()},
            judge="markers", completion_cache=completion_cache_enabled(), config=self.asked,
            resumed_stages=tuple(self.dir.resumed),
            timings=dict(self.dir.timings, total=round(sum(self.dir.timings.values()), 2)), search=searched,
        )
        self.dir.write_report(report, render(report))
        self.dir.complete("report")
        return report


def run(model: Model, out: Path | str, config: RunConfig, load_seconds: float = 0.0, resume: bool = False) -> Report:
    """`interp run`: every stage; report.json and report.md in `out`."""
    random.seed(SEED)
    torch.manual_seed(SEED)
    return Study(model, out, config, resume=resume, load_seconds=load_seconds).report()


def find_directions(model: Model, out: Path | str, config: RunConfig, kinds: tuple[str, ...],
                    resume: bool = False) -> dict[str, Direction]:
    """`interp direction`: label train and validation prompts, extract, select; directions.* in `out`."""
    random.seed(SEED)
    torch.manual_seed(SEED)
    contrasts = tuple(c for c in CONTRASTS if c.name in kinds)
    study = Study(model, out, config, resume=resume, contrasts=contrasts, splits=("train", "val"))
    return {k: study.chosen[k] for k in kinds}


def _empty_thought(labels: Labels) -> dict[str, dict[str, float]] | None:
    """Reasoning models: mean P(empty thought) per set and language over all splits (None otherwise)."""
    values: dict[str, dict[str, list[float]]] = {}
    for r in labels:
        if r.p_empty_thought is not None and math.isfinite(r.p_empty_thought):
            values.setdefault(r.set, {}).setdefault(r.lang, []).append(r.p_empty_thought)
    return {n: {lang: sum(v) / len(v) for lang, v in by.items()} for n, by in values.items()} or None


def _versions() -> dict[str, str]:
    found = versions()
    return {"python": platform.python_version(), "torch": torch.__version__,
            **{key: found[name] or "not installed" for key, name in
               (("transformers", "transformers"), ("transformer_lens", "transformer-lens"), ("nnsight", "nnsight"))},
            "platform": platform.platform()}

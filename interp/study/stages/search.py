"""Search: the Optuna study over direction, kernel and variant (interp.study.search) for one kind, on the
run's validation prompts, candidates and sweep; `search_saved_run` is `interp search` on a run directory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from interp.behaviour.judge import is_suppressed
from interp.core.errors import InterpError
from interp.core.measure import Intervention, kl_under, last_logits
from interp.core.model import Model
from interp.core.variants import Variant
from interp.study.config import Contrast, RunConfig
from interp.study.damage import DamageProbe, capability_items
from interp.study.measures import as_prompts, generate_rows, paired_rows, rates_by_lang
from interp.study.records import Labels, PairedRow, SweepRow, from_json
from interp.study.report_md import render
from interp.study.rundir import RunDir
from interp.study.search import SearchInputs, SearchSettings, run_search, variant_for
from interp.study.search_records import PickTest, SearchResult
from interp.study.stages.candidates import Candidates

__all__ = ["PickTester", "keep_pick_rows", "ranked_candidates", "search_inputs", "search_saved_run", "search_variant"]


def ranked_candidates(rows: Sequence[SweepRow], chosen: tuple[int, int], kl_threshold: float,
                      n: int) -> tuple[tuple[int, int], ...]:
    """The sweep's pick, then its other scored candidates by bypass score, those under the KL threshold first."""
    scored = sorted((r for r in rows if r.bypass_score is not None and (r.layer, r.position) != chosen),
                    key=lambda r: (r.kl > kl_threshold, r.bypass_score))
    return (chosen, *((r.layer, r.position) for r in scored))[:n]


def search_inputs(c: Contrast, labels: Labels, candidates: Candidates, rows: Sequence[SweepRow],
                  chosen: tuple[int, int], config: RunConfig, settings: SearchSettings) -> SearchInputs:
    """Validation prompts of the kind's target set that the model suppresses (the first n_val), harmless
    validation prompts as many as the sweep and its confirmation used, and the sweep's top candidates."""
    suppressed = [r for r in labels.rows(c.target, "val") if is_suppressed(r.label)]
    if not suppressed:
        raise InterpError(f"{c.name}: the model suppresses none of the {c.target} validation prompts; nothing to search on")
    harmless = [r.prompt for r in labels.rows("harmless", "val")][: config.sweep_n + config.confirm_n]
    return SearchInputs(c.name, candidates.by_kind[c.name], candidates.answered_means[c.name],
                        ranked_candidates(rows, chosen, config.kl_threshold, settings.top_n),
                        tuple(as_prompts(suppressed[: settings.n_val])), tuple(harmless), config.eval_tokens,
                        config.kl_threshold)


class PickTester:
    """Measures an edit as the evaluate stage measures a kind's ablation: the kind's target set on the test
    split (its labelled rows are the before) and the first-token KL on the harmless test prompts. After a call,
    `paired` holds the prompts before -> after (kind `search_<kind>`), the completions its rates come from."""

    def __init__(self, model: Model, c: Contrast, labels: Labels, config: RunConfig):
        self.model, self.c, self.config = model, c, config
        self.before = labels.rows(c.target, "test")
        self.harmless = [r.prompt for r in labels.rows("harmless", "test")]
        self.paired: list[PairedRow] = []

    def __call__(self, intervention: Intervention) -> PickTest:
        model, c = self.model, self.c
        after = generate_rows(model, as_prompts(self.before), intervention, self.config.eval_tokens,
                              description=f"search pick {c.name}: {c.target} test", set_name=c.target, split="test")
        self.paired = paired_rows(f"search_{c.name}", c.target, self.before, after)
        harmless = self.harmless
        kl = kl_under(model, harmless, intervention, last_logits(model, harmless)) if harmless else None
        return PickTest(c.target, self.config.eval_tokens, rates_by_lang(self.before), rates_by_lang(after), kl,
                        len(harmless))


def keep_pick_rows(run_dir: RunDir, tester: PickTester) -> None:
    """search_pick.jsonl: the pick's before -> after rows, one kind's replacing its earlier ones."""
    kind = f"search_{tester.c.name}"
    if tester.paired:
        name = RunDir.PAIRED_ROWS["search"]
        run_dir.write_per_prompt([r for r in run_dir.per_prompt(name) if r.kind != kind] + tester.paired, name)


def search_saved_run(model: Model, path: Path | str, kind: str, settings: SearchSettings) -> SearchResult:
    """`interp search`: run (or resume) the kind's search in a run directory whose select stage is done, with
    the run's own configuration; search.json gets the kind's result, and a finished run's report its search."""
    run_dir = RunDir(path)
    identity, completed = run_dir.stored()
    if "select" not in completed:
        raise InterpError(f"{run_dir.path}: the run has not finished its select stage; finish it first "
                          "(`interp run --resume --out DIR` or `interp direction`)")
    if identity.get("model") != model.fingerprint:
        raise InterpError(f"--run {run_dir.path} measured another model (fingerprint {str(identity.get('model'))[:12]}, "
                          f"this one {model.fingerprint[:12]}); pass the run's --model")
    contrasts = identity.get("contrasts") or {}
    if kind not in contrasts:
        raise InterpError(f"--run {run_dir.path} has no {kind!r} direction (it has {', '.join(contrasts) or 'none'})")
    where = str(run_dir.path / "manifest.json")
    c = from_json(Contrast, contrasts[kind], f"{where}: contrasts.{kind}")
    if c.derived:
        raise InterpError(f"{kind} is derived from other kinds and has no candidates of its own to search")
    config = from_json(RunConfig, identity.get("config"), f"{where}: config")
    chosen = run_dir.direction(kind, model.fingerprint)
    rows = run_dir.read("sweeps", dict[str, tuple[SweepRow, ...]]).get(kind, ())
    labels = run_dir.labels()
    inputs = search_inputs(c, labels, Candidates.load(run_dir), rows, (chosen.layer, chosen.position), config, settings)
    harmless = [r.prompt for r in labels.rows("harmless", "test")][: config.kl_n]
    probe = DamageProbe(model, harmless, capability_items(config.capability_n), config.kl_tokens)
    tester = PickTester(model, c, labels, config)
    result = run_search(model, run_dir.search_db, inputs, settings, probe=probe, test=tester)
    keep_pick_rows(run_dir, tester)
    searched = {**run_dir.search(), kind: result}
    run_dir.write_search(searched)
    if "report" in completed:  # a finished run: its report.json and report.md gain the search
        report = replace(run_dir.report(), search=searched)
        run_dir.write_report(report, render(report))
    return result


def search_variant(model: Model, path: Path | str, kind: str, trial: int | None = None) -> Variant:
    """The edit that trial `trial` (default: the pick) of the run's search of `kind` made, to apply
    (`ablate_variant`) or to write into the weights (`orthogonalize_variant`)."""
    run_dir = RunDir(path)
    result = run_dir.search().get(kind)
    if result is None:
        raise InterpError(f"{run_dir.path} holds no {kind} search; run `interp search --run {run_dir.path} --kind {kind}`")
    number = result.pick if trial is None else trial
    if number is None:
        raise InterpError(f"the {kind} search picked no trial ({result.pick_note}); name one with trial=N")
    chosen = next((t for t in result.trials if t.number == number), None)
    if chosen is None or chosen.params is None:
        raise InterpError(f"the {kind} search has no trial {number} with parameters")
    if run_dir.stored()[0].get("model") != model.fingerprint:
        raise InterpError(f"{run_dir.path} measured another model than {model.spec}; load the run's model")
    candidates = Candidates.load(run_dir)
    inputs = SearchInputs(kind, candidates.by_kind[kind], candidates.answered_means[kind], (), (), (), 0, 0.0)
    return variant_for(model, inputs, chosen.params)

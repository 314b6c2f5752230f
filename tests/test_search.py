"""The Optuna search over direction, kernel and variant, on a tiny Qwen2 trained to refuse the censored prompts:
files written, resumed after a stop or a kill, reproducible by seed, the front non-dominated, the pick by its
stated rule, refused edits recorded rather than fatal."""

import contextlib
import json
import shutil
from dataclasses import replace

import optuna
import pytest
from tiny import tiny_config, trained_refuser

from interp.core.errors import InterpError
from interp.core.interventions import steer
from interp.study.config import CONTRASTS, contrast
from interp.study.measures import generate_rows
from interp.study.records import Labels, SweepRow, to_json
from interp.study.report_md import search_section
from interp.study.rundir import RunDir
from interp.study.runner import Study, find_directions
from interp.study.search import PICK_RULE, SearchSettings, pareto_front, pick, run_search
from interp.study.search_records import KernelParams, SearchParams, SearchSpace, SearchTrial
from interp.study.stages.candidates import Candidates
from interp.study.stages.label import load_sets
from interp.study.stages.search import PickTester, search_inputs, search_saved_run, search_variant

CONFIG = tiny_config().replace(sweep_positions=None)  # every post-instruction position: several candidates
SETTINGS = SearchSettings(trials=6, n_val=4, startup_trials=3)  # trials 3-5 come from TPE, not the random start


@pytest.fixture(scope="module")
def refuser_run(tmp_path_factory):
    """A tiny refuser of the censored prompts, and a run directory of it whose select stage is done (trained on
    the train and validation splits only: the search uses no others)."""
    sets = load_sets(CONFIG, ("censored", "controls", "harmless"))
    texts = {name: [p.prompt for split in ("train", "val") for p in by[split].items] for name, by in sets.items()}
    model = trained_refuser(texts["censored"], texts["controls"] + texts["harmless"], steps=60)
    path = tmp_path_factory.mktemp("search") / "run"
    find_directions(model, path, CONFIG, ("censorship",))
    return model, path


@pytest.fixture(scope="module")
def searched(refuser_run, tmp_path_factory):
    """A run directory searched for SETTINGS.trials trials in one go, and the result."""
    model, source = refuser_run
    path = tmp_path_factory.mktemp("searched") / "run"
    shutil.copytree(source, path)
    return path, search_saved_run(model, path, "censorship", SETTINGS)


def _copy(refuser_run, tmp_path, name="run"):
    model, path = refuser_run
    shutil.copytree(path, tmp_path / name)
    return model, tmp_path / name


def _dominates(a, b):
    return a.suppression <= b.suppression and a.damage <= b.damage and (a.suppression, a.damage) != (b.suppression, b.damage)


def _same(a, b):
    def key(trials):
        return [(t.number, t.state, t.params, t.suppression, t.damage) for t in trials]

    return key(a) == key(b)


def test_a_search_writes_its_study_result_and_figure_with_a_non_dominated_front_and_a_rule_obeying_pick(searched):
    from interp.study.figures import write_search_front

    path, result = searched
    written = write_search_front(path)
    assert (path / "search.db").stat().st_size > 0 and {p.name for p in written} == {"search_front.png", "search_front.pdf"}
    assert RunDir(path).search() == {"censorship": result}  # search.json reads back as the same record
    assert len(result.trials) == 6 and all(t.state == "complete" for t in result.trials)
    assert result.trials[0].params == SearchParams(*_sweep_pick(path), None, False, False)  # the sweep's own pick
    assert result.trials[1].params != result.trials[2].params  # random start: each trial its own seed
    done = [t for t in result.trials if t.state == "complete"]
    front = [result.trial(n) for n in result.front]
    assert front and not any(_dominates(u, t) for t in front for u in done)
    assert all(any(_dominates(f, t) for f in front) for t in done if t.number not in result.front)
    under = [t for t in front if t.damage <= CONFIG.kl_threshold]
    want = min(under, key=lambda t: (t.suppression, t.damage, t.number)).number if under else None
    assert result.pick == want and result.pick_rule == PICK_RULE and result.kl_threshold == CONFIG.kl_threshold


def test_a_search_trial_gives_back_the_edit_it_made(refuser_run, searched):
    model, _ = refuser_run
    path, result = searched
    first = search_variant(model, path, "censorship", 0)  # trial 0: the sweep's own pick, plain ablation
    assert (first.directions[0].layer, first.directions[0].position) == _sweep_pick(path) and first.kernel is None
    for t in result.trials:
        v = search_variant(model, path, "censorship", t.number)
        assert (v.kernel is None) == (t.params.kernel is None) and v.norm_preserving == t.params.norm_preserving
        assert v.directions[0].layer == t.params.layer
    with pytest.raises(InterpError, match="no refusal search"):
        search_variant(model, path, "refusal")


def _sweep_pick(path):
    chosen = RunDir(path).direction("censorship")
    return chosen.layer, chosen.position


def test_a_stopped_search_resumes_to_what_one_uninterrupted_search_gives_and_the_seed_decides(refuser_run, searched,
                                                                                               tmp_path):
    model, stopped = _copy(refuser_run, tmp_path, "stopped")
    _, other = _copy(refuser_run, tmp_path, "other")
    first = search_saved_run(model, stopped, "censorship", replace(SETTINGS, trials=3))
    resumed = search_saved_run(model, stopped, "censorship", SETTINGS)
    assert len(resumed.trials) == 6 and _same(resumed.trials[:3], first.trials)
    assert _same(searched[1].trials, resumed.trials)  # the same seed, in one go
    reseeded = search_saved_run(model, other, "censorship", replace(SETTINGS, trials=3, seed=1))
    assert not _same(reseeded.trials, first.trials)  # trial 0 is the same enqueued pick; 1 and 2 differ


def test_a_trial_cut_off_by_a_kill_is_failed_as_interrupted_and_run_again(refuser_run, tmp_path):
    model, path = _copy(refuser_run, tmp_path)
    search_saved_run(model, path, "censorship", replace(SETTINGS, trials=2))
    study = optuna.load_study(study_name="censorship", storage=f"sqlite:///{path / 'search.db'}")
    study.ask({"candidate": study.trials[0].distributions["candidate"]})  # a kill mid-trial leaves it running
    result = search_saved_run(model, path, "censorship", replace(SETTINGS, trials=3))
    cut = result.trial(2)
    assert cut.state == "failed" and cut.error == "interrupted" and cut.params is None
    assert [t.state for t in result.trials] == ["complete", "complete", "failed", "complete"]


def test_ctrl_c_fails_the_running_trial_as_interrupted_and_keeps_it_out_of_the_count(refuser_run, tmp_path,
                                                                                     monkeypatch):
    import interp.study.search

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    model, path = _copy(refuser_run, tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(interp.study.search, "suppression", interrupt)
        with pytest.raises(KeyboardInterrupt):
            search_saved_run(model, path, "censorship", replace(SETTINGS, trials=1))
    result = search_saved_run(model, path, "censorship", replace(SETTINGS, trials=1))
    assert [(t.state, t.error) for t in result.trials] == [("failed", "interrupted"), ("complete", None)]
    assert result.trials[0].params is not None  # sampled before the interrupt, and recorded


def test_resuming_with_other_settings_is_refused_in_one_line(refuser_run, tmp_path):
    model, path = _copy(refuser_run, tmp_path)
    search_saved_run(model, path, "censorship", replace(SETTINGS, trials=1))
    with pytest.raises(InterpError, match="another n_val") as err:
        search_saved_run(model, path, "censorship", replace(SETTINGS, trials=2, n_val=2))
    assert "\n" not in str(err.value)


def test_an_edit_the_variants_refuse_fails_its_trial_with_the_reason(refuser_run, tmp_path):
    model, path = _copy(refuser_run, tmp_path)
    run_dir = RunDir(path)
    inputs = _inputs(model, run_dir)
    # peak between the two blocks and zero width: every linear kernel gives every block strength 0
    space = SearchSpace(("1:-1",), (0.3, 0.7), (0.0, 0.0), (0.8, 1.5), (0.0, 1.0))
    result = run_search(model, run_dir.search_db, inputs, replace(SETTINGS, trials=4), space=space, show_progress=False)
    failed = [t for t in result.trials if t.state == "failed"]
    assert len(result.trials) == 4 and failed and all("strength 0" in t.error for t in failed)
    assert all(t.params.kernel is not None for t in failed) and not set(result.front) & {t.number for t in failed}


def _inputs(model, run_dir):
    tensors, meta = run_dir.candidates()
    rows = run_dir.read("sweeps", dict[str, tuple[SweepRow, ...]])["censorship"]
    return search_inputs(contrast("censorship"), run_dir.labels(), Candidates.from_tensors(tensors, meta["strata"]),
                         rows, _sweep_pick(run_dir.path), CONFIG, SETTINGS)


def test_the_run_stage_searches_when_asked_and_the_report_states_the_pick_and_its_rule(refuser_run, tmp_path):
    model, _ = refuser_run
    censorship = tuple(c for c in CONTRASTS if c.name == "censorship")
    config = CONFIG.replace(search_trials=2, search_n=2)
    study = Study(model, tmp_path / "run", config, contrasts=censorship, splits=("train", "val"))
    results = study.searched
    assert RunDir(tmp_path / "run").stored()[1][-1] == "search" and len(results["censorship"].trials) == 2
    again = Study(model, tmp_path / "run", config, resume=True, contrasts=censorship, splits=("train", "val"))
    assert again.searched == results and again.dir.resumed[-1] == "search"  # loaded, not searched again
    text = "\n".join(search_section(results))
    assert PICK_RULE in text and "## Search: censorship" in text
    picked = results["censorship"].picked
    assert (f"trial {picked.number}:" in text) if picked else ("**pick**: none" in text)
    damage = results["censorship"].pick_damage  # the pick's capability probe, measured after the search
    assert (damage is not None and damage.capability_after is not None and "the pick's damage" in text) if picked \
        else damage is None


def test_the_pick_is_measured_on_the_test_split_as_the_evaluate_stage_measures_an_ablation(refuser_run):
    model, path = refuser_run
    sets = load_sets(CONFIG, ("censored", "harmless"))  # the refuser learned the validation prompts: they stand in
    before = [row for name in ("censored", "harmless") for row in generate_rows(  # for a test split it refuses
        model, sets[name]["val"].items, None, CONFIG.eval_tokens, set_name=name, split="test", show_progress=False)]
    measure = PickTester(model, contrast("censorship"), Labels(before), CONFIG)
    unedited = measure(contextlib.nullcontext)
    assert unedited.after == unedited.before and unedited.kl_harmless == pytest.approx(0, abs=1e-6)
    assert unedited.before["all"].n == len(sets["censored"]["val"].items) and unedited.n_harmless > 0
    pushed = measure(lambda: steer(model, RunDir(path).direction("censorship"), coef=-4.0))  # answers, surely
    assert pushed.before == unedited.before and pushed.after["all"].n == unedited.before["all"].n
    assert pushed.after["all"].suppression_rate < pushed.before["all"].suppression_rate  # the edit is measured
    assert pushed.kl_harmless > 1e-3
    assert [r.prompt for r in measure.paired] == [r.prompt for r in before if r.set == "censored"]
    assert sum(r.suppressed_after for r in measure.paired) / len(measure.paired) == pushed.after["all"].suppression_rate


def test_a_run_begun_before_the_search_fields_existed_still_resumes(refuser_run, tmp_path):
    model, path = _copy(refuser_run, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    for field in ("search_trials", "search_n", "search_kind"):
        del manifest["identity"]["config"][field]
    (path / "manifest.json").write_text(json.dumps(manifest))
    censorship = tuple(c for c in CONTRASTS if c.name == "censorship")
    Study(model, path, CONFIG, resume=True, contrasts=censorship, splits=("train", "val"))  # defaults: same run
    with pytest.raises(InterpError, match="different config"):
        Study(model, path, CONFIG.replace(search_trials=3), resume=True, contrasts=censorship, splits=("train", "val"))


def _trial(number, suppression, damage):
    return SearchTrial(number, "complete", SearchParams(1, -1, KernelParams(1, 1, 1, 0), False, False), suppression, damage)


def test_front_and_pick_follow_the_stated_rule():
    trials = [_trial(0, 0.5, 0.05), _trial(1, 0.25, 0.5), _trial(2, 0.5, 0.01), _trial(3, 0.75, 0.001),
              _trial(4, 0.5, 0.01), SearchTrial(5, "failed", None, error="interrupted"), _trial(6, 0.9, 0.02)]
    front = pareto_front(trials)
    assert front == (1, 2, 3, 4)  # 0 and 6 are dominated by 2; equal points (2, 4) dominate neither
    assert pick(trials, front, 0.1)[0] == 2  # lowest suppression under 0.1 (2, 4 tie), then the earlier
    assert pick(trials, front, 1.0)[0] == 1
    chosen, note = pick(trials, front, 0.0001)
    assert chosen is None and "no front trial" in note
    assert pick([trials[5]], (), 0.1) == (None, "no trial completed")
    assert json.loads(json.dumps(to_json(trials)))[0]["params"]["kernel"]["peak_layer"] == 1


def test_the_search_command_refuses_a_directory_without_a_run_before_loading_a_model(tmp_path):
    from interp.cli_search import search

    with pytest.raises(InterpError, match="holds no run") as err:  # the model path does not exist: never loaded
        search(run_dir=tmp_path, trials=2, n_val=4, kind="censorship", seed=0, model=str(tmp_path / "no-model"),
               dtype="fp32", device="cpu", backend="transformer_lens", device_map=None, remote=False,
               trust_remote_code=False, allow_ndif_host=False, thinking="auto")
    assert "\n" not in str(err.value)

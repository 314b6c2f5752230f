import json
import subprocess
import sys
import time
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny import tiny_config

from interp.core.errors import InterpError
from interp.study.config import RunConfig
from interp.study.rundir import RunDir
from interp.study.runner import run
from interp.study.stages.steer import steered_kind

ROOT = Path(__file__).parent.parent


def test_a_model_that_suppresses_nothing_is_explained_not_crashed(tmp_path):
    from tiny import tiny_model

    model = tiny_model("qwen2")  # random weights: babble, never a refusal marker
    with pytest.raises(InterpError, match="no behavioural contrast"):
        run(model, tmp_path, tiny_config())
    assert not (tmp_path / "report.json").exists()  # nothing half-written


def test_pipeline_end_to_end_on_a_tiny_model_that_really_refuses(refuser, tmp_path, monkeypatch):
    import interp.study.runner

    label_sets = interp.study.runner.label_sets

    def label_slowly(*args, **kwargs):
        time.sleep(2.0)
        return label_sets(*args, **kwargs)

    monkeypatch.setattr(interp.study.runner, "label_sets", label_slowly)
    report = run(refuser, tmp_path, tiny_config())
    # each stage records its own seconds, not those of the earlier stages it pulled in, and they add up
    assert report.timings["label"] >= 2.0 > report.timings["activations"]
    stages = sum(v for k, v in report.timings.items() if k != "total")
    assert report.timings["total"] == pytest.approx(stages, abs=0.02)
    censorship = report.kinds["censorship"]
    assert censorship.baseline.suppression_rate > 0.5  # it learned to refuse
    assert set(report.kinds) == {"censorship", "refusal", "censorship_specific"}
    assert report.model.fingerprint == refuser.fingerprint
    assert report.completion_cache is False  # conftest turns it off; the report must say so
    assert report.versions["torch"] == torch.__version__  # with its build tag (+cpu, +cu130)
    assert report.versions["transformer_lens"] == metadata.version("transformer-lens")  # was "?": no __version__
    assert all(k in report.timings for k in ("label", "activations", "select", "evaluate", "steering", "total"))
    for name in ("report.json", "labels.jsonl", "per_prompt.jsonl", "directions.safetensors", "directions.json"):
        assert (tmp_path / name).stat().st_size > 0
    rows = [json.loads(line) for line in (tmp_path / "per_prompt.jsonl").read_text().splitlines()]
    assert {r["kind"] for r in rows} >= {"censorship", "refusal", "random_censorship"}
    for kind in report.kinds.values():  # damage beyond the first-token KL, for every kind
        assert kind.damage.capability_after.n == kind.damage.capability_before.n == 8
        assert kind.damage.kl_per_token > 0 and kind.damage.n == 2
    assert "Damage beyond the first-token KL" in (tmp_path / "report.md").read_text()
    steered = RunDir(tmp_path).per_prompt("steering.jsonl")  # the completions each steered rate comes from
    assert steered
    for name, kind in report.kinds.items():
        for point in kind.steering or ():
            mine = [r for r in steered if r.kind == steered_kind(name, point.coef)]
            assert len(mine) == point.n
            if point.n:
                assert sum(r.suppressed_after for r in mine) / point.n == pytest.approx(point.suppression_rate)
    # judged again with the judge it ran with, from its saved completions: no verdict moves
    rejudged = subprocess.run([sys.executable, str(ROOT / "scripts" / "rejudge_run.py"), str(tmp_path)],
                              capture_output=True, text=True, cwd=ROOT)
    assert rejudged.returncode == 0, rejudged.stderr
    assert f"0 of {2 * len(rows)} verdicts change" in rejudged.stdout


def test_a_search_on_a_finished_run_puts_the_pick_and_its_test_numbers_in_the_report(refuser, tmp_path):
    from interp.study.search import SearchSettings
    from interp.study.stages.search import search_saved_run

    run(refuser, tmp_path, tiny_config())
    result = search_saved_run(refuser, tmp_path, "censorship", SearchSettings(trials=2, n_val=2, startup_trials=1))
    assert RunDir(tmp_path).report().search == {"censorship": result}
    text = (tmp_path / "report.md").read_text()
    assert "## Search: censorship" in text
    if result.pick is not None:  # measured on the test split like the run's own ablation
        assert result.pick_test.before["all"].n == RunDir(tmp_path).report().kinds["censorship"].baseline.n
        assert "the pick on the test split" in text
        rows = RunDir(tmp_path).per_prompt("search_pick.jsonl")  # the completions the pick's rates come from
        assert {r.kind for r in rows} == {"search_censorship"} and len(rows) == result.pick_test.after["all"].n
    # a stage rerun later (--resume) rewrites the report: the search stays in it
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["completed"].remove("transfer" if "transfer" in manifest["completed"] else "steering")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert run(refuser, tmp_path, tiny_config(), resume=True).search == {"censorship": result}
    assert "## Search: censorship" in (tmp_path / "report.md").read_text()


def test_same_model_prompts_and_seed_give_bit_identical_directions(refuser, tmp_path):
    run(refuser, tmp_path / "a", tiny_config())
    run(refuser, tmp_path / "b", tiny_config())
    a, b = load_file(str(tmp_path / "a" / "directions.safetensors")), load_file(str(tmp_path / "b" / "directions.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    labels = [(tmp_path / d / "labels.jsonl").read_text() for d in "ab"]
    assert labels[0] == labels[1]


def test_interrupted_run_resumes_to_the_same_report(refuser, tmp_path, monkeypatch):
    import interp.study.runner

    whole = run(refuser, tmp_path / "whole", tiny_config())

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed during the steering stage

    with monkeypatch.context() as patch:
        patch.setattr(interp.study.runner, "dose_response", interrupt)
        with pytest.raises(KeyboardInterrupt):
            run(refuser, tmp_path / "cut", tiny_config())
    manifest = json.loads((tmp_path / "cut" / "manifest.json").read_text())
    assert manifest["completed"] == ["label", "activations", "select", "evaluate"]
    assert not (tmp_path / "cut" / "report.json").exists()
    calls = []
    monkeypatch.setattr(interp.study.runner, "label_sets", lambda *a, **k: calls.append("label"))  # must not rerun
    resumed = run(refuser, tmp_path / "cut", tiny_config(), resume=True)
    assert calls == [] and resumed.resumed_stages == ("label", "activations", "select", "evaluate")
    same = {"timings": {}, "resumed_stages": ()}
    assert replace(resumed, **same) == replace(whole, **same)


def test_an_evaluate_stage_cut_after_one_kind_resumes_at_the_next(refuser, tmp_path, monkeypatch):
    import interp.study.damage
    import interp.study.runner

    whole = run(refuser, tmp_path / "whole", tiny_config())
    real, kinds = interp.study.runner.evaluate_kind, []

    def cut_at_the_second_kind(model, c, *args, **kwargs):
        if kinds:
            raise KeyboardInterrupt
        kinds.append(c.name)
        return real(model, c, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(interp.study.runner, "evaluate_kind", cut_at_the_second_kind)
        with pytest.raises(KeyboardInterrupt):
            run(refuser, tmp_path / "cut", tiny_config())
    assert set(json.loads((tmp_path / "cut" / "evaluate-partial.json").read_text())) == set(kinds)
    evaluated, probes = [], []
    real_accuracy = interp.study.damage.capability_accuracy
    monkeypatch.setattr(interp.study.runner, "evaluate_kind",
                        lambda model, c, *a, **k: (evaluated.append(c.name), real(model, c, *a, **k))[1])
    monkeypatch.setattr(interp.study.damage, "capability_accuracy",
                        lambda *a, **k: (probes.append(k.get("description")), real_accuracy(*a, **k))[1])
    resumed = run(refuser, tmp_path / "cut", tiny_config(), resume=True)
    assert kinds[0] not in evaluated and len(evaluated) == len(whole.kinds) - 1
    assert "capability probe, unedited" not in probes  # the finished kind's unedited score is reused
    assert not (tmp_path / "cut" / "evaluate-partial.json").exists()
    same = {"timings": {}, "resumed_stages": ()}
    assert replace(resumed, **same) == replace(whole, **same)
    assert (tmp_path / "cut" / "per_prompt.jsonl").read_text() == (tmp_path / "whole" / "per_prompt.jsonl").read_text()


def test_an_earlier_run_is_never_overwritten_without_resume(refuser, tmp_path):
    run(refuser, tmp_path, tiny_config())
    before = (tmp_path / "report.json").read_bytes()
    with pytest.raises(InterpError, match="--resume"):
        run(refuser, tmp_path, tiny_config())
    assert (tmp_path / "report.json").read_bytes() == before


def test_resume_against_another_config_is_refused(refuser, tmp_path):
    run(refuser, tmp_path, tiny_config())
    other = tiny_config().replace(kl_threshold=0.5)
    with pytest.raises(InterpError, match="different config"):
        run(refuser, tmp_path, other, resume=True)


def test_transfer_stage_ablates_each_language_direction_and_each_kind_across(refuser, tmp_path):
    from interp.study.report_md import render

    report = run(refuser, tmp_path, tiny_config().replace(transfer=True))
    languages, kinds = report.transfer.languages.built_from, report.transfer.kinds
    assert {"en", "zh"} <= set(languages)  # the tiny refuser suppresses in both languages
    for row in [languages["en"].ablated, languages["zh"].ablated, *kinds.values()]:
        assert {"all", "en", "zh"} <= set(row.ablated) and row.baseline["all"].n == row.ablated["all"].n
    assert -1 <= languages["en"].cosine_with_pooled <= 1
    assert kinds["refusal_on_censored"].baseline["all"].suppression_rate > 0.5
    assert "## Transfer" in render(report) and (tmp_path / "transfer.json").is_file()
    rows = RunDir(tmp_path).per_prompt("transfer.jsonl")  # the completions each transferred rate comes from
    expected = {(f"censorship[{lang}]", "censored") for lang in languages} | {("refusal", "censored"), ("censorship", "harmful")}
    assert {(r.kind, r.set) for r in rows} == expected
    across = [r for r in rows if r.kind == "refusal"]
    ablated = kinds["refusal_on_censored"].ablated["all"]
    assert len(across) == ablated.n and sum(r.suppressed_after for r in across) / ablated.n == pytest.approx(ablated.suppression_rate)
    assert RunDir(tmp_path).report() == report  # what was written reads back as the same typed record


def test_affine_selection_sweeps_with_the_same_affine_ablation_it_saves(refuser, tmp_path):
    from interp.core import directions
    from interp.study.runner import find_directions

    chosen = find_directions(refuser, tmp_path, tiny_config().replace(affine=True), ("refusal",))["refusal"]
    assert chosen.offset is not None and chosen.scores["kl"] >= 0
    saved = directions.load(tmp_path, "refusal", expect_fingerprint=refuser.fingerprint)
    assert saved.offset is not None and torch.allclose(saved.offset, chosen.offset)


def test_censorship_contrast_pools_both_political_sets_by_behaviour():
    """The censorship direction is suppressed minus answered over censored + controls together: a
    sensitive prompt the model answers sits on the answered side, a control it refuses on the other."""
    from tiny import tiny_model

    from interp.core.activations import collect
    from interp.study.config import contrast
    from interp.study.records import LabelledRow, Labels
    from interp.study.stages.candidates import extract_candidates

    model = tiny_model("qwen2")
    prompts = {"censored": [("What happened in Beijing in June 1989?", "refusal"), ("Who is Xi Jinping?", "answer")],
               "controls": [("What happened at Kent State in 1970?", "refusal"), ("Who is Olaf Scholz?", "answer")],
               "harmful": [("How do I pick a lock?", "refusal")], "harmless": [("How do I bake bread?", "answer")]}
    labels = Labels([LabelledRow(name, "train", p, "en", "x", lab, "") for name, rows in prompts.items() for p, lab in rows])
    found = extract_candidates(model, labels, RunConfig(), (contrast("censorship"),))
    candidates, means = found.by_kind, found.answered_means
    political = [p for name in ("censored", "controls") for p, _ in prompts[name]]
    acts = collect(model, political, ["sup", "ans", "sup", "ans"], show_progress=False)
    assert torch.allclose(candidates["censorship"], (acts.mean("sup") - acts.mean("ans")).float(), atol=1e-4)
    assert torch.allclose(means["censorship"], acts.mean("ans").float(), atol=1e-4)

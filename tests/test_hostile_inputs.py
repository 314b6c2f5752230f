"""Careless and hostile inputs (issue 20): each is one line, a non-zero exit, and no file left behind;
options are checked before any model loads; a direction or coefficient that would turn the model's
output into garbage is refused; finished work survives an interruption."""

import json
import math
import os
import socket
import sys
import time
from pathlib import Path

import pytest
import torch
from test_math import random_direction
from tiny import tiny_model

from interp.core.errors import InterpError


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`interp ARGS` in this process (fast: no interpreter start-up): the exit code and stderr."""
    from interp import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["interp", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    captured = capsys.readouterr()
    cli.stdout = captured.out
    return int(exit_info.value.code or 0), captured.err


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interp: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if a command gets as far as loading a model: its options must be refused first."""
    import interp.core.model as model_module

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(model_module, "load_model", refuse)


# -- options refused before the model loads, leaving nothing behind ------------------------------------
@pytest.mark.parametrize("args, needle", [
    (("--dtype", "fp64"), "--dtype"),
    (("--device", "bogus"), "--device"),
    (("--device", "cuda:7"), "cuda"),
    (("--backend", "jax"), "--backend"),
    (("--remote",), "--backend nnsight"),
    (("--method", "bogus"), "method"),
    (("--per-split", "2"), "--per-split"),
    (("--eval-tokens", "0"), "--eval-tokens"),
])
def test_run_options_are_refused_before_the_model_loads_and_leave_no_directory(
        monkeypatch, capsys, tmp_path, no_model_load, args, needle):
    code, err = cli(monkeypatch, capsys, "run", "--out", str(tmp_path / "run"), *args)
    one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("out", ["/proc/interp-run", "FILE/under-a-file"])
def test_outputs_that_cannot_be_written_are_refused_before_the_model_loads(monkeypatch, capsys, tmp_path, no_model_load, out):
    (tmp_path / "FILE").write_text("a file")
    out = out.replace("FILE", str(tmp_path / "FILE"))
    direction_dir = tmp_path / "d"
    model = tiny_model()
    from interp.core import directions as dirs

    dirs.save([random_direction(model, kind="refusal")], direction_dir)
    for args in (("run", "--out", out), ("direction", "--kind", "refusal", "--out", out),
                 ("label", "--prompts", "harmless", "--out", f"{out}/labels.jsonl"),
                 ("evaluate", "--direction", str(direction_dir), "--kind", "refusal", "--prompts", "harmless",
                  "--out", f"{out}/eval.json"),
                 ("export", "--direction", str(direction_dir), "--kind", "refusal", "--out", out)):
        code, err = cli(monkeypatch, capsys, *args)
        one_line_error(code, err, "cannot write" if "proc" in out else "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE", "d"]


def test_direction_into_an_existing_run_is_refused_before_the_model_loads(monkeypatch, capsys, tmp_path, no_model_load):
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "directions.json").write_text("{}")
    code, err = cli(monkeypatch, capsys, "direction", "--kind", "refusal", "--out", str(tmp_path))
    one_line_error(code, err, "earlier run")
    assert (tmp_path / "directions.json").read_text() == "{}"


def test_evaluate_refuses_a_non_finite_coefficient_and_a_missing_direction_before_loading(
        monkeypatch, capsys, tmp_path, no_model_load):
    code, err = cli(monkeypatch, capsys, "evaluate", "--direction", str(tmp_path / "none"), "--kind", "refusal",
                    "--prompts", "harmless", "--out", str(tmp_path / "e.json"), "--intervention", "steer", "--coef", "nan")
    one_line_error(code, err, "--coef")
    code, err = cli(monkeypatch, capsys, "evaluate", "--direction", str(tmp_path / "none"), "--kind", "refusal",
                    "--prompts", "harmless", "--out", str(tmp_path / "e.json"))
    one_line_error(code, err, "not found")
    code, err = cli(monkeypatch, capsys, "evaluate", "--direction", str(tmp_path / "none"), "--kind", "refusal",
                    "--prompts", "harmless", "--out", str(tmp_path / "e.json"), "--capability-n", "-1")
    one_line_error(code, err, "capability items must be at least 0")
    assert list(tmp_path.iterdir()) == []


def test_a_non_default_ndif_host_is_refused_unless_the_user_trusts_it(monkeypatch):
    from nnsight import CONFIG

    from interp.core.remote import DEFAULT_HOST, check_ready

    monkeypatch.setattr(CONFIG.API, "HOST", DEFAULT_HOST)
    monkeypatch.setenv("NDIF_API_KEY", "k")
    monkeypatch.setenv("NDIF_HOST", "https://ndif.attacker.example")
    with pytest.raises(InterpError, match="--allow-ndif-host"):
        check_ready("org/model")
    check_ready("org/model", allow_other_host=True)
    monkeypatch.delenv("NDIF_HOST")
    check_ready("org/model")
    monkeypatch.setattr(CONFIG.API, "HOST", "http://localhost:9")  # set in an nnsight config file instead
    with pytest.raises(InterpError, match="localhost:9"):
        check_ready("org/model")


def test_remote_help_states_the_unpickling_risk(monkeypatch, capsys):
    code, _ = cli(monkeypatch, capsys, "run", "--help")
    text = " ".join(cli.stdout.split())
    assert code == 0 and "weights_only=False" in text and "--allow-ndif-host" in text


def test_ctrl_c_prints_what_was_kept_and_exits_130(monkeypatch, capsys, tmp_path):
    import interp.study.figures as figures

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # what the terminal sends mid-command

    monkeypatch.setattr(figures, "make_all", interrupted)
    code, err = cli(monkeypatch, capsys, "figures", str(tmp_path))
    assert code == 130 and err.startswith("interp: interrupted") and "--resume" in err and "Traceback" not in err


def test_usage_mistakes_keep_clicks_message_and_exit_code(monkeypatch, capsys):
    code, err = cli(monkeypatch, capsys, "run", "--no-such-option")
    assert code == 2 and "No such option" in err and "Traceback" not in err


# -- directions and coefficients that would make garbage ----------------------------------------------
@pytest.fixture(scope="module")
def model():
    return tiny_model(backend="nnsight")


@pytest.mark.parametrize("corrupt, needle", [
    (lambda d: d.unit * float("nan"), "non-finite"),
    (lambda d: d.unit * 1000, "not a unit vector"),
    (lambda d: torch.stack([d.unit, d.unit], -1), "one [d_model] vector"),
])
def test_ablation_refuses_a_corrupt_direction(model, corrupt, needle):
    from dataclasses import replace

    from interp.core.interventions import ablate, orthogonalize, steer

    d = random_direction(model, kind="refusal")
    bad = replace(d, unit=corrupt(d))
    for use in (lambda: ablate(model, bad).__enter__(), lambda: steer(model, bad, 1.0).__enter__(),
                lambda: orthogonalize(model, bad)):
        with pytest.raises(InterpError, match=needle.replace("[", r"\[").replace("]", r"\]")):
            use()
    assert model.edits == []


@pytest.mark.parametrize("coef", [math.nan, math.inf])
def test_steering_refuses_a_non_finite_coefficient(model, coef):
    from interp.core.interventions import steer

    with pytest.raises(InterpError, match="finite"):
        steer(model, random_direction(model, kind="refusal"), coef).__enter__()


def test_export_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    from interp.core.export import export_hf

    m = tiny_model(backend="nnsight")
    with torch.no_grad():
        next(iter(m.hf.parameters()))[0, 0] = float("nan")
    with pytest.raises(InterpError, match="non-finite weights"):
        export_hf(m, random_direction(m, kind="refusal"), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_export_directory_gets_ordinary_permissions(tmp_path):
    from interp.core.export import export_hf

    old = os.umask(0o022)
    try:
        m = tiny_model(backend="nnsight")
        out = export_hf(m, random_direction(m, kind="refusal"), tmp_path / "out")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o755


# -- long prompts: a stated budget, refused before any work --------------------------------------------
def test_a_prompt_over_the_token_budget_is_refused_before_any_generation(model, monkeypatch):
    from interp.core.generation import complete

    monkeypatch.setenv("INTERP_MAX_PROMPT_TOKENS", "64")
    calls = []
    monkeypatch.setattr(model.backend, "generate", lambda *a, **k: calls.append(1))
    with pytest.raises(InterpError, match="64-token budget"):
        complete(model, ["short", "x " * 200], 4, show_progress=False)
    assert calls == []
    monkeypatch.setenv("INTERP_MAX_PROMPT_TOKENS", "lots")
    with pytest.raises(InterpError, match="INTERP_MAX_PROMPT_TOKENS"):
        complete(model, ["short"], 4, show_progress=False)


def test_long_prompts_go_in_smaller_batches(model):
    from interp.core.generation import TOKENS_PER_BATCH, length_batches

    prompts = ["hi"] * 40 + ["word " * 600] * 40
    batches = list(length_batches(model, prompts, batch_size=32))
    assert sorted(i for b in batches for i in b) == list(range(80))
    for batch in batches:
        longest = max(len(model.tokenizer(model.chat_text(prompts[i]))["input_ids"]) for i in batch)
        assert len(batch) <= 32 and (len(batch) == 1 or len(batch) * longest <= TOKENS_PER_BATCH)


# -- finished work survives an interruption -----------------------------------------------------------
def test_completions_are_kept_batch_by_batch_when_a_call_is_interrupted(tmp_path, monkeypatch):
    from interp.core.generation import complete

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    monkeypatch.delenv("INTERP_NO_COMPLETION_CACHE")
    m = tiny_model()
    real_generate, calls = m.backend.generate, []

    def interrupted_on_the_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(m.backend, "generate", interrupted_on_the_second_batch)
    prompts = [f"prompt number {i}" for i in range(6)]
    with pytest.raises(KeyboardInterrupt):
        complete(m, prompts, 4, batch_size=3, show_progress=False)
    [cache_file] = (tmp_path / "completions").iterdir()
    assert len(json.loads(cache_file.read_text())) == 3  # the first batch was written before the interrupt
    calls.clear()
    complete(m, prompts, 4, batch_size=3, show_progress=False)
    assert len(calls) == 1  # only the unfinished batch is generated again


def test_completions_under_an_ablation_are_cached_by_its_vector(tmp_path, monkeypatch):
    from interp.core.generation import complete
    from interp.core.interventions import ablate, edited
    from interp.core.types import Edit

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    monkeypatch.delenv("INTERP_NO_COMPLETION_CACHE")
    m = tiny_model()
    d = random_direction(m, kind="refusal")
    with ablate(m, d):
        first = complete(m, ["hello", "what happened"], 5, show_progress=False)
    files = sorted((tmp_path / "completions").iterdir())
    assert len(files) == 1 and "-edit-" in files[0].name
    with ablate(m, d):
        assert complete(m, ["hello", "what happened"], 5, show_progress=False) == first
    with ablate(m, -d):  # the same line, but another vector: its own cache file
        complete(m, ["hello"], 5, show_progress=False)
    assert len(list((tmp_path / "completions").iterdir())) == 2
    with edited(m, Edit("write", lambda x: x * 1.01)):  # an edit without a key is never cached
        complete(m, ["hello"], 5, show_progress=False)
    assert len(list((tmp_path / "completions").iterdir())) == 2


def test_completions_that_stopped_under_other_markers_are_not_reused(tmp_path, monkeypatch):
    from interp.core.generation import complete

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    monkeypatch.delenv("INTERP_NO_COMPLETION_CACHE")
    m = tiny_model()
    whole = complete(m, ["hello"], 12, show_progress=False, stop=lambda text: False, stop_key="a")
    cut = complete(m, ["hello"], 12, show_progress=False, stop=lambda text: len(text) > 0, stop_key="b")
    assert len(cut[0]) < len(whole[0])  # stopped at the first check: not the other test's cached text
    assert complete(m, ["hello"], 12, show_progress=False, stop=lambda text: False, stop_key="a") == whole
    assert len(list((tmp_path / "completions").iterdir())) == 2


def test_an_interrupted_selection_sweep_resumes_where_it_stopped(tmp_path, refuser, monkeypatch):
    from tiny import tiny_config

    import interp.core.selection as selection
    from interp.study.config import contrast
    from interp.study.runner import Study
    from interp.study.stages.select import build_scorer, select

    config = tiny_config().replace(sweep_positions=None)  # every position: enough candidates to interrupt
    only = {"contrasts": (contrast("refusal"),), "splits": ("train", "val")}  # the least labelling that sweeps

    def study(resume: bool = True) -> Study:
        return Study(refuser, tmp_path, config, resume=resume, **only)

    study(resume=False).candidates  # noqa: B018 -- the stages before select, checkpointed
    real_ablate, scored = selection.ablate, []

    def interrupted_after_one(model, d):
        if scored:
            raise KeyboardInterrupt
        scored.append((d.layer, d.position))
        return real_ablate(model, d)

    monkeypatch.setattr(selection, "ablate", interrupted_after_one)
    with pytest.raises(KeyboardInterrupt):
        study().selected  # noqa: B018
    [rows] = json.loads((tmp_path / "sweep-partial.json").read_text()).values()
    assert [r["layer"] for r in rows if r["bypass_score"] is not None] == [scored[0][0]]

    rescored = []
    monkeypatch.setattr(selection, "ablate", lambda model, d: (rescored.append((d.layer, d.position)),
                                                                real_ablate(model, d))[1])
    resumed = study()
    _, sweeps, _ = resumed.selected
    assert rescored[0] not in scored  # the sweep went on from the second candidate
    assert not (tmp_path / "sweep-partial.json").exists()
    monkeypatch.setattr(selection, "ablate", real_ablate)
    scorer, _ = build_scorer(refuser, resumed.labels)
    _, uninterrupted = select(refuser, resumed.candidates, resumed.labels, scorer, config, resumed.contrasts,
                              resumed.hashes)
    assert sweeps == uninterrupted  # the same rows as a sweep never interrupted


# -- no network unless a hub id is given ------------------------------------------------------------------
def test_a_local_model_run_touches_no_network(monkeypatch, capsys, tmp_path):
    m = tiny_model()
    m.hf.save_pretrained(tmp_path / "model")
    m.tokenizer.save_pretrained(tmp_path / "model")
    attempts = []

    def no_network(self, address, *args):
        attempts.append(address)
        raise OSError("network use in a local run")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    started = time.perf_counter()
    code, err = cli(monkeypatch, capsys, "chat", "--model", str(tmp_path / "model"), "--dtype", "fp32",
                    "--max-new-tokens", "4", "hello")
    assert code == 0, err
    assert attempts == [] and time.perf_counter() - started < 60
    assert Path(tmp_path / "model").is_dir()

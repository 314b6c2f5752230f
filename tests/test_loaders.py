"""Every loader refuses a broken or tampered input with one InterpError that says what to do: never a
traceback, never a wrong direction, prompt set or report used as if it were right (issue 20)."""

from __future__ import annotations

import json
import os
import random

import pytest
import torch
from safetensors.torch import load_file, save_file

from interp.core import directions
from interp.core.directions import Direction
from interp.core.errors import InterpError

D_MODEL = 8


def noise(n: int, seed: int) -> bytes:
    """Random bytes, the same in every collection (parallel test workers must agree on parameter ids)."""
    return random.Random(seed).randbytes(n)


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert text and "\n" not in text and "Traceback" not in text
    return text


def saved_direction(path, kind="refusal", offset=False):
    raw = torch.arange(1.0, D_MODEL + 1)
    d = Direction(directions.unit(raw), raw, 1, -1, kind, "f" * 64,
                  offset=torch.zeros(3, D_MODEL) if offset else None)
    directions.save([d], path)
    return d


def edit_tensors(path, **changes):
    file = path / "directions.safetensors"
    tensors = load_file(str(file))
    for name, value in changes.items():
        if value is None:
            tensors.pop(name.replace("__", "."))
        else:
            tensors[name.replace("__", ".")] = value
    save_file(tensors, str(file))


def edit_meta(path, change):
    file = path / "directions.json"
    meta = json.loads(file.read_text())
    file.write_text(json.dumps(change(meta)))


# -- directions ---------------------------------------------------------------------------------------

def test_a_saved_direction_loads_with_its_offset(tmp_path):
    d = saved_direction(tmp_path, offset=True)
    back = directions.load(tmp_path, expect_d_model=D_MODEL)
    assert torch.equal(back.unit, d.unit) and torch.equal(back.offset, d.offset)


@pytest.mark.parametrize("name, value, message", [
    ("refusal__unit", torch.full((D_MODEL,), float("nan")), "refusal.unit holds NaN"),
    ("refusal__raw", torch.tensor([float("inf")] + [0.0] * (D_MODEL - 1)), "refusal.raw holds NaN or infinity"),
    ("refusal__offset", torch.full((3, D_MODEL), float("nan")), "refusal.offset holds NaN"),
    ("refusal__unit", directions.unit(torch.ones(D_MODEL)) * 1000, "norm 1000, not 1"),
    ("refusal__unit", directions.unit(torch.ones(D_MODEL + 1)), r"shape \[9\].*d_model 8"),
    ("refusal__unit", torch.ones(2, D_MODEL) / 4, r"shape \[2, 8\]"),
    ("refusal__unit", torch.ones(D_MODEL, dtype=torch.int32), "int32"),
    ("refusal__raw", torch.arange(1.0, D_MODEL + 1) * 2, "directions.json records"),
    ("refusal__unit", None, "no tensor refusal.unit"),
    ("refusal__raw", None, "no tensor refusal.raw"),
])
def test_a_tampered_direction_tensor_is_refused_at_load(tmp_path, name, value, message):
    saved_direction(tmp_path)
    edit_tensors(tmp_path, **{name: value})
    with pytest.raises(InterpError, match=message) as err:
        directions.load(tmp_path)
    assert "make the directions again" in one_line(err)


def _without(key):
    def change(meta):
        del meta["refusal"][key]
        return meta
    return change


def _set(key, value):
    def change(meta):
        meta["refusal"][key] = value
        return meta
    return change


@pytest.mark.parametrize("change, message", [
    (lambda meta: list(meta.values()), "expected an object of directions by kind, got a JSON list"),
    (lambda meta: {}, "got an empty object"),
    (lambda meta: {"refusal": [1, 2]}, "'refusal': expected an object, got a JSON list"),
    (lambda meta: "refusal", "got a JSON str"),
    *[(_without(key), f"missing field '{key}'") for key in
      ("layer", "position", "kind", "model_fingerprint", "method", "prompt_hashes", "scores", "d_model")],
    (_set("layer", "1"), "'layer' must be int"),
    (_set("layer", 1.5), "'layer' must be int"),
    (_set("position", True), "'position' must be int"),
    (_set("model_fingerprint", None), "'model_fingerprint' must be str"),
    (_set("scores", [1]), "'scores' must be dict"),
    (_set("scores", {"kl": [1]}), "'scores' must map names"),
    (_set("prompt_hashes", {"censored": 3}), "'prompt_hashes' must map"),
    (_set("d_model", 9), r"shape \[8\].*d_model 9"),
    (_set("d_model", 0), "d_model must be positive"),
    (_set("kind", "censorship"), "the entry says kind 'censorship'"),
    (_set("raw_norm", 1e6), "directions.json records 1e\\+06"),
    (_set("raw_norm", "big"), "'raw_norm' must be a finite number"),
])
def test_a_malformed_directions_json_is_refused_at_load(tmp_path, change, message):
    saved_direction(tmp_path)
    edit_meta(tmp_path, change)
    with pytest.raises(InterpError, match=message) as err:
        directions.load(tmp_path)
    one_line(err)


@pytest.mark.parametrize("data", [b"", b"\xff\xfe\x00garbage", b'{"refusal": ', b"NaN"])
def test_an_unreadable_directions_json_is_refused(tmp_path, data):
    saved_direction(tmp_path)
    (tmp_path / "directions.json").write_bytes(data)
    with pytest.raises(InterpError, match="directions.json") as err:
        directions.load(tmp_path)
    one_line(err)


@pytest.mark.parametrize("data", [b"", noise(200, 1), b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_random_bytes_as_the_tensor_file_are_refused(tmp_path, data):
    saved_direction(tmp_path)
    (tmp_path / "directions.safetensors").write_bytes(data)
    with pytest.raises(InterpError, match="corrupt or truncated direction file") as err:
        directions.load(tmp_path)
    one_line(err)


@pytest.mark.parametrize("field", ["unit", "raw", "offset"])
def test_a_non_finite_direction_is_never_saved(tmp_path, field):
    raw = torch.arange(1.0, D_MODEL + 1)
    values = {"unit": directions.unit(raw), "raw": raw, "offset": torch.zeros(2, D_MODEL)}
    values[field] = values[field].clone()
    values[field].view(-1)[0] = float("nan")
    d = Direction(values["unit"], values["raw"], 1, -1, "refusal", "f" * 64, offset=values["offset"])
    with pytest.raises(InterpError, match=f"refusal.{field}.* not finite") as err:
        directions.save([d], tmp_path / "out")
    one_line(err)
    assert not (tmp_path / "out").exists()


def test_a_non_finite_score_is_never_saved(tmp_path):
    raw = torch.arange(1.0, D_MODEL + 1)
    d = Direction(directions.unit(raw), raw, 1, -1, "refusal", "f" * 64, scores={"kl": float("nan")})
    with pytest.raises(InterpError, match=r"refusal\.scores\.kl is not finite"):
        directions.save([d], tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- prompt files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, data, message", [
    ("random.jsonl", bytes(range(256)) * 4, r"random.jsonl: not UTF-8 text \(byte \d+\); re-save"),
    ("random.csv", b"\x8f\x00\xff" * 50, "random.csv: not UTF-8"),
    ("huge.csv", b'prompt\nfine\n"' + b"x" * 200_000 + b'"\n', r"huge.csv: unreadable CSV near line 3"),
    ("list.jsonl", b'[{"prompt": "a"}, {"prompt": "b"}]\n', r"list.jsonl:1: .*JSON list.*one JSON object a line"),
    ("pretty.json", b'[\n {"prompt": "a"}\n]\n', r"pretty.json:1: .*JSON list.*one JSON object a line"),
    ("number.jsonl", b"3\n", r"number.jsonl:1: expected a JSON object, got int"),
    ("types.jsonl", b'{"prompt": ["a"]}\n', r"types.jsonl:1: missing or empty 'prompt'"),
    ("category.jsonl", b'{"prompt": "a", "category": {"x": 1}}\n', r"category.jsonl:1: 'category' must be a string"),
    ("lang.jsonl", b'{"prompt": "a", "lang": ["en"]}\n', r"lang.jsonl:1: 'lang' must be 'en' or 'zh'"),
    ("facts.jsonl", b'{"prompt": "a", "facts": "x"}\n', r"facts.jsonl:1: 'facts' must be a list"),
    ("surrogate.jsonl", b'{"prompt": "a\\ud800"}\n', r"surrogate.jsonl:1: 'prompt' is not valid Unicode"),
    ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", r"deep.jsonl:1: .*(nested too deeply|JSON list)"),
    ("empty.csv", b"", r"empty.csv: no prompts in the file"),
    ("blank.txt", b"\n  \n\n", r"blank.txt: no prompts in the file"),
    ("header.csv", b"question,answer\nx,y\n", r"header.csv:1: CSV needs a 'prompt' column \(found question, answer\)"),
    ("emptycell.csv", b"prompt,lang\n,en\n", r"emptycell.csv:2: missing or empty 'prompt'"),
])
def test_a_broken_prompt_file_is_one_error_naming_file_and_line(tmp_path, name, data, message):
    from interp.behaviour import prompts

    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(InterpError, match=message) as err:
        prompts.load(str(path))
    one_line(err)


def test_an_unreadable_prompt_file_is_one_error(tmp_path):
    from interp.behaviour import prompts

    with pytest.raises(InterpError, match=r"/proc/self/mem: cannot read the prompt file") as err:
        prompts.load("/proc/self/mem")  # a file even root cannot read()
    one_line(err)
    with pytest.raises(InterpError, match="is a directory, not a prompt file"):
        prompts.load(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_a_prompt_file_without_read_permission_is_one_error(tmp_path):
    from interp.behaviour import prompts

    path = tmp_path / "secret.jsonl"
    path.write_text('{"prompt": "a"}\n')
    path.chmod(0)
    with pytest.raises(InterpError, match="secret.jsonl: cannot read the prompt file.*Permission denied"):
        prompts.load(str(path))


# -- run directories and reports ------------------------------------------------------------------------

IDENTITY = {"model": "f" * 64, "config": {"per_split": 8}}


def started_run(path, stages=("label", "activations")):
    from interp.study.rundir import RunDir

    run = RunDir(path).open(IDENTITY, resume=False)
    if "label" in stages:
        run.write_labels([])
    if "activations" in stages:
        run.write_candidates({"refusal.candidates": torch.zeros(2, 1, D_MODEL)}, {"strata": {}})
    for stage in stages:
        run.complete(stage, 1.0)
    return run


def test_a_resumed_run_loads_its_stages(tmp_path):
    from interp.study.rundir import RunDir

    started_run(tmp_path)
    run = RunDir(tmp_path).open(IDENTITY, resume=True)
    assert run.completed == ["label", "activations"] and run.candidates()[1] == {"strata": {}}


@pytest.mark.parametrize("data, message", [
    (b"", r"manifest.json is corrupt"),
    (b"\x00\xff random", r"manifest.json is corrupt"),
    (b'{"identity": ', r"manifest.json is corrupt"),
    (b"[1, 2]", r"manifest.json: not a run manifest"),
    (b'{"identity": "x"}', r"manifest.json: not a run manifest"),
    (json.dumps({"identity": IDENTITY, "completed": "label"}).encode(), "'completed' must be a list"),
    (json.dumps({"identity": IDENTITY, "completed": [1]}).encode(), "'completed' must be a list"),
    (json.dumps({"identity": IDENTITY, "completed": [], "timings": [3]}).encode(), "'timings' must map"),
])
def test_resume_with_a_corrupt_manifest_is_one_error(tmp_path, data, message):
    from interp.study.rundir import RunDir

    started_run(tmp_path)
    (tmp_path / "manifest.json").write_bytes(data)
    with pytest.raises(InterpError, match=message) as err:
        RunDir(tmp_path).open(IDENTITY, resume=True)
    assert "choose a new --out" in one_line(err)


@pytest.mark.parametrize("missing", ["candidates.safetensors", "candidates.json", "labels.jsonl"])
def test_resume_with_a_stage_file_deleted_names_it_before_any_work(tmp_path, missing):
    from interp.study.rundir import RunDir

    started_run(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(InterpError, match=f"{missing} is missing, though manifest.json records stage") as err:
        RunDir(tmp_path).open(IDENTITY, resume=True)
    assert "run again without --resume" in one_line(err)


def test_resume_into_a_directory_without_a_manifest_is_refused(tmp_path):
    from interp.study.rundir import RunDir

    started_run(tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(InterpError, match="holds no run .*nothing to resume"):
        RunDir(tmp_path).open(IDENTITY, resume=True)


@pytest.mark.parametrize("name, data, message", [
    ("candidates.safetensors", b"\x00" * 3, "candidates.safetensors is corrupt"),
    ("candidates.json", b"[]", "candidates.json: missing field 'strata'"),
    ("candidates.json", b'{"strata": {"refusal": {"en": "x"}}}', r"strata.refusal.en: expected float"),
    ("labels.jsonl", b'{"set": 1}\n', r"labels.jsonl:1.set: expected str"),
    ("labels.jsonl", b'{"set": "a"}\n\xff\n', r"labels.jsonl is corrupt"),
    ("labels.jsonl", b'{"set": "a"}\nnot json\n', r"labels.jsonl:2 is corrupt"),
])
def test_a_corrupt_stage_file_is_one_error_naming_it(tmp_path, name, data, message):
    from interp.study.rundir import RunDir

    started_run(tmp_path)
    (tmp_path / name).write_bytes(data)
    run = RunDir(tmp_path).open(IDENTITY, resume=True)
    with pytest.raises(InterpError, match=message) as err:
        run.labels() if name == "labels.jsonl" else run.candidates()
    one_line(err)


def test_non_finite_candidates_are_refused_on_load(tmp_path):
    from interp.study.rundir import RunDir

    started_run(tmp_path)
    save_file({"refusal.candidates": torch.full((2, 1, D_MODEL), float("nan"))}, str(tmp_path / "candidates.safetensors"))
    with pytest.raises(InterpError, match="refusal.candidates holds NaN"):
        RunDir(tmp_path).open(IDENTITY, resume=True).candidates()


def _report(path):
    return json.loads((path / "report.json").read_text())


def _edit_report(path, change):
    data = _report(path)
    change(data)
    (path / "report.json").write_text(json.dumps(data))


@pytest.mark.parametrize("data, message", [
    (b"", r"report.json is corrupt"),
    (noise(64, 2), r"report.json is corrupt"),
    (b'{"kinds": {', r"report.json is corrupt"),
    (b"[]", r"report.json: not a report"),
    (b'{"schema": "2"}', r"'schema' must be a positive integer"),
    (b'{"schema": 3}', r"report schema 3 is newer than this interp reads \(2\); upgrade interp"),
    (b'{"schema": 1, "kinds": [1]}', r"a schema-1 report with an unexpected shape"),
    (b'{"schema": 1, "kinds": {"a": {}}, "projections": [{"set": 1}]}', r"a schema-1 report with an unexpected shape"),
    (b'{"schema": 2}', r"report.json: missing field 'kinds'"),
])
def test_a_corrupt_report_is_one_error_and_draws_nothing(tmp_path, data, message):
    from test_figures import synthetic_run

    from interp.study import figures

    synthetic_run(tmp_path)
    (tmp_path / "report.json").write_bytes(data)
    with pytest.raises(InterpError, match=message) as err:
        figures.make_all(tmp_path)
    one_line(err)
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("change, message", [
    (lambda r: r["kinds"]["refusal"].update(kl_harmless="NaN"), r"kinds.refusal.kl_harmless: expected float"),
    (lambda r: r["kinds"]["refusal"].update(layer=2.5), r"kinds.refusal.layer: expected int"),
    (lambda r: r["kinds"]["refusal"]["scores"].update(kl=True), r"kinds.refusal.scores.kl: expected float"),
    (lambda r: r["sweeps"].pop("refusal"), r"the refusal sweep has no scored row for the selected layer 2"),
    (lambda r: r["kinds"]["refusal"].update(layer=40), r"the refusal sweep has no scored row for the selected layer 40"),
    (lambda r: r["kinds"]["refusal"].update(position=-9), r"selected layer 2, position -9"),
    (lambda r: r["projections"][0]["values"].pop("censorship"), r"a projection lacks the censorship direction"),
])
def test_a_report_that_contradicts_itself_is_refused_before_drawing(tmp_path, change, message):
    from test_figures import synthetic_run

    from interp.study import figures

    synthetic_run(tmp_path)
    _edit_report(tmp_path, change)
    with pytest.raises(InterpError, match=message) as err:
        figures.make_all(tmp_path)
    one_line(err)
    assert not (tmp_path / "figures").exists()


def test_figures_need_the_direction_candidates(tmp_path):
    from test_figures import synthetic_run

    from interp.study import figures

    synthetic_run(tmp_path)
    (tmp_path / "directions.safetensors").unlink()
    with pytest.raises(InterpError, match="directions.safetensors: no censorship candidates"):
        figures.load_run(tmp_path)


def test_nan_means_not_measured_only_where_a_value_is_optional(tmp_path):
    from interp.study.records import LabelledRow, SteerPoint, from_json, to_json
    from interp.study.rundir import RunDir

    row = LabelledRow("censored", "test", "q", "en", "c", "refusal", "t", p_empty_thought=float("nan"))
    assert to_json(row)["p_empty_thought"] is None
    run = RunDir(tmp_path)
    run.write_labels([row])
    assert run.labels().all[0].p_empty_thought is None
    assert from_json(LabelledRow, {**to_json(row), "p_empty_thought": float("nan")}).p_empty_thought is None
    with pytest.raises(InterpError, match="steering.json: kl_harmless is not a finite number"):
        run.write_json("steering", SteerPoint(1.0, 0.5, 4, float("nan")))
    with pytest.raises(InterpError, match="kl_harmless: expected float, got inf"):
        from_json(SteerPoint, {"coef": 1.0, "suppression_rate": None, "n": 4, "kl_harmless": float("inf")})


# -- models ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    from tiny import tiny_model

    model = tiny_model("qwen2", layers=1)
    path = tmp_path_factory.mktemp("tiny-hf")
    model.hf.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    return path


def _copy_model(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / "model.safetensors").write_bytes(os.urandom(300)), r"could not load .*SafetensorError.*download them again"),
    (lambda p: (p / "model.safetensors").write_bytes((p / "model.safetensors").read_bytes()[:5000]),
     r"could not load .*SafetensorError.*download them again"),
    (lambda p: (p / "model.safetensors").write_bytes(b""), r"could not load .*download them again"),
    (lambda p: (p / "config.json").unlink(), r"is not a Hugging Face model directory \(no config.json\)"),
    (lambda p: (p / "config.json").write_bytes(b"\xff{"), r"config.json: not valid JSON"),
    (lambda p: (p / "config.json").write_text("[1]"), r"config.json: no 'model_type' string"),
    (lambda p: (p / "config.json").write_text(
        (p / "config.json").read_text().replace('"qwen2"', '"no_such_arch"')),
     r"model_type 'no_such_arch' is unknown to transformers 5\.\d+\.\d+; check the name, or upgrade"),
])
def test_a_damaged_model_directory_is_one_error(saved_tiny, tmp_path, damage, message):
    from interp.core.model import load_model

    path = _copy_model(saved_tiny, tmp_path / "model")
    damage(path)
    with pytest.raises(InterpError, match=message) as err:
        load_model(str(path), dtype="fp32")
    one_line(err)


def test_the_undamaged_copy_loads(saved_tiny):
    from interp.core.model import load_model

    assert load_model(str(saved_tiny), dtype="fp32").n_layers == 1


@pytest.mark.parametrize("data, message", [
    (b"", r"empty.gguf is empty: not a GGUF model file"),
    (b"\x00" * 64 + noise(200, 3), r"does not start with the GGUF magic bytes"),
    (b"GGUF" + noise(200, 4), r"could not load .*\.gguf.*download them again"),
])
def test_a_broken_gguf_is_one_error(tmp_path, data, message):
    from interp.core.model import load_model

    path = tmp_path / "empty.gguf"
    path.write_bytes(data)
    with pytest.raises(InterpError, match=message) as err:
        load_model(str(path), dtype="fp32")
    one_line(err)


def test_a_truncated_real_gguf_is_one_error(tmp_path):
    from interp.core import embedded
    from interp.core.model import load_model

    spec = embedded.EMBEDDED["embedded"]
    try:
        part = embedded.locate_part(spec, spec.parts[0])
    except InterpError:
        pytest.skip("the embedded model's packages are not installed")
    with open(part, "rb") as handle:
        (tmp_path / "cut.gguf").write_bytes(handle.read(64 << 10))  # the header, cut inside its metadata
    with pytest.raises(InterpError, match=r"could not load .*cut\.gguf") as err:
        load_model(str(tmp_path / "cut.gguf"), dtype="fp32")
    one_line(err)


def test_an_unreachable_hub_fails_fast_with_one_line(monkeypatch):
    import time

    from interp.core import model as M

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://interp-test.invalid")
    start = time.perf_counter()
    with pytest.raises(InterpError, match=r"cannot reach https://interp-test.invalid to download 'nobody/no-such-model'"
                                          r" \(no network\?\) and it is not in the Hugging Face cache") as err:
        M.load_model("nobody/no-such-model")
    assert time.perf_counter() - start < 10
    one_line(err)


def test_a_hub_id_without_a_network_fails_in_seconds():
    """The real endpoint: offline here it is unreachable, online the id does not exist. Both: one line, fast."""
    import time

    from interp.core.model import load_model

    start = time.perf_counter()
    with pytest.raises(InterpError) as err:
        load_model("interp-tests/no-such-model-7f3a")
    assert time.perf_counter() - start < 10
    one_line(err)


def test_a_cached_hub_model_loads_without_a_network(saved_tiny, tmp_path, monkeypatch):
    import shutil

    from interp.core.model import load_model

    commit = "0" * 40
    repo = tmp_path / "models--nobody--cached-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(saved_tiny, repo / "snapshots" / commit)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "https://interp-test.invalid")
    assert load_model("nobody/cached-tiny", dtype="fp32").n_layers == 1


def test_the_cli_prints_a_broken_model_as_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "empty.gguf").write_bytes(b"")
    result = subprocess.run([sys.executable, "-m", "interp.cli", "chat", "--model", str(tmp_path / "empty.gguf"), "hi"],
                            capture_output=True, text=True)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("interp: error:"), result.stderr


def test_logit_lens_lists_of_different_lengths_are_drawn(tmp_path):
    from test_figures import synthetic_run

    from interp.study import figures

    synthetic_run(tmp_path)
    _edit_report(tmp_path, lambda r: r["logit_lens"].update(refusal={"promoted": [], "suppressed": ["x"],
                                                                     "skipped": "no unembedding"}))
    assert [p.name for p in figures.make_all(tmp_path, only=["logit_lens"])] == ["logit_lens.png", "logit_lens.pdf"]


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_an_out_directory_that_cannot_be_made_is_one_error(tmp_path, where):
    from interp.study.rundir import RunDir

    (tmp_path / "file").write_text("precious")
    out = tmp_path / "file" / "run" if where == "under_a_file" else "/proc/interp-no-such-run"
    with pytest.raises(InterpError, match="cannot write .*(is a file|does not accept new files)") as err:
        RunDir(out).open(IDENTITY, resume=False)
    one_line(err)
    assert (tmp_path / "file").read_text() == "precious"

"""Random bytes and random JSON at every loader: the only exception that may ever escape is InterpError,
with a one-line message (issue 20). Each example writes into its own temporary directory, since pytest's
tmp_path is not reset between hypothesis examples."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interp.core.errors import InterpError

# INTERP_FUZZ_EXAMPLES=2000 for a longer hunt; 60 keeps the suite fast
FUZZ = settings(max_examples=int(os.environ.get("INTERP_FUZZ_EXAMPLES", "60")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def refused_or_loaded(load, *args):
    """Run a loader; an InterpError must be one non-empty line. Anything else fails the test."""
    try:
        return load(*args)
    except InterpError as err:
        text = str(err)
        assert text and "\n" not in text
        return None


def dump(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw, value):
    """`value` with one subtree (chosen at random, possibly the whole) replaced by random JSON, or deleted."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        copy = dict(value)
        if draw(st.integers(0, 3)) == 0:
            del copy[key]
        else:
            copy[key] = draw(mutated(value[key]))
        return copy
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        return [*value[:index], draw(mutated(value[index])), *value[index + 1:]]
    return draw(json_values)


# -- prompt files and completions ---------------------------------------------------------------------

SUFFIXES = st.sampled_from([".jsonl", ".json", ".csv", ".txt"])
PROMPT_ROW = {"prompt": "What happened?", "category": "c", "lang": "en", "facts": ["x", ["y", "z"]],
              "reference": "r", "official": "o"}


@FUZZ
@given(data=st.binary(max_size=400), suffix=SUFFIXES)
def test_prompt_files_of_random_bytes(data, suffix):
    from interp.behaviour import prompts

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"p{suffix}"
        path.write_bytes(data)
        refused_or_loaded(prompts.load, str(path))


@FUZZ
@given(rows=st.lists(json_values | mutated(PROMPT_ROW), min_size=0, max_size=4), suffix=SUFFIXES)
def test_prompt_files_of_random_json_rows(rows, suffix):
    from interp.behaviour import prompts

    data = b"\n".join(dump(r) for r in rows)
    refused_or_loaded(prompts.parse, data, f"p{suffix}")


@FUZZ
@given(rows=st.lists(json_values | mutated({**PROMPT_ROW, "completion": "I cannot."}), max_size=4),
       junk=st.binary(max_size=50))
def test_completion_files_for_the_judges(rows, junk):
    from interp.behaviour.judges import read_cases

    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate((b"\n".join(dump(r) for r in rows), junk)):
            path = Path(tmp) / f"c{i}.jsonl"
            path.write_bytes(data)
            refused_or_loaded(read_cases, path)


# -- directions ---------------------------------------------------------------------------------------

def _saved_direction(path: Path) -> dict:
    from interp.core import directions
    from interp.core.directions import Direction

    raw = torch.arange(1.0, 9.0)
    directions.save([Direction(directions.unit(raw), raw, 1, -1, "refusal", "f" * 64,
                               offset=torch.zeros(2, 8))], path)
    return json.loads((path / "directions.json").read_text())


@FUZZ
@given(data=st.binary(max_size=300), which=st.sampled_from(["directions.json", "directions.safetensors"]))
def test_direction_files_of_random_bytes(data, which):
    from interp.core import directions

    with tempfile.TemporaryDirectory() as tmp:
        _saved_direction(Path(tmp))
        (Path(tmp) / which).write_bytes(data)
        refused_or_loaded(directions.load, tmp)


@FUZZ
@given(st.data())
def test_direction_metadata_of_random_json_beside_a_valid_tensor_file(data):
    from interp.core import directions

    with tempfile.TemporaryDirectory() as tmp:
        meta = _saved_direction(Path(tmp))
        (Path(tmp) / "directions.json").write_bytes(dump(data.draw(mutated(meta))))
        refused_or_loaded(directions.load, tmp, data.draw(st.sampled_from([None, "refusal"])), None, 8)


@FUZZ
@given(st.data())
def test_direction_tensors_of_random_shapes_and_values(data):
    from safetensors.torch import save_file

    from interp.core import directions

    shapes = st.lists(st.integers(0, 9), max_size=3)
    values = st.sampled_from([0.0, 1.0, -1.0, 1e30, float("nan"), float("inf")])
    with tempfile.TemporaryDirectory() as tmp:
        _saved_direction(Path(tmp))
        names = data.draw(st.lists(st.sampled_from(["refusal.unit", "refusal.raw", "refusal.offset", "other"]),
                                   unique=True))
        tensors = {n: torch.full(data.draw(shapes), data.draw(values)).to(
                       data.draw(st.sampled_from([torch.float32, torch.float16, torch.int64]))) for n in names}
        save_file(tensors, str(Path(tmp) / "directions.safetensors"))
        refused_or_loaded(directions.load, tmp)


# -- run directories and reports ----------------------------------------------------------------------

IDENTITY = {"model": "f" * 64}


@FUZZ
@given(data=st.binary(max_size=200) | json_values.map(dump) | mutated(
    {"identity": IDENTITY, "completed": ["label"], "timings": {"label": 1.0}}).map(dump))
def test_run_manifests(data):
    from interp.study.rundir import RunDir

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(tmp).open(IDENTITY, resume=False)
        run.write_labels([])
        run.complete("label")
        (Path(tmp) / "manifest.json").write_bytes(data)
        resumed = refused_or_loaded(RunDir(tmp).open, IDENTITY, True)
        if resumed is not None:
            refused_or_loaded(resumed.labels)


@pytest.fixture(scope="module")
def valid_report(tmp_path_factory):
    from test_figures import synthetic_run

    path = synthetic_run(tmp_path_factory.mktemp("run"))
    return path, json.loads((path / "report.json").read_text())


@FUZZ
@given(st.data())
def test_reports_and_figures(valid_report, data):
    import shutil

    from interp.study import figures
    from interp.study.records import Report, from_json
    from interp.study.rundir import RunDir

    source, report = valid_report
    value = data.draw(st.binary(max_size=200) | json_values.map(dump) | mutated(report).map(dump))
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        (Path(tmp) / "report.json").write_bytes(value)
        refused_or_loaded(RunDir(tmp).report)
        refused_or_loaded(figures.load_run, tmp)
    try:
        parsed = json.loads(value)
    except ValueError:
        return
    refused_or_loaded(from_json, Report, parsed, "report.json")


@FUZZ
@given(rows=st.lists(json_values | mutated({"kind": "censorship", "set": "censored", "prompt": "q"}), max_size=3),
       junk=st.binary(max_size=80))
def test_per_prompt_and_label_files(rows, junk):
    from interp.study.rundir import RunDir

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in (("per_prompt.jsonl", b"\n".join(dump(r) for r in rows)), ("labels.jsonl", junk)):
            (Path(tmp) / name).write_bytes(data)
        refused_or_loaded(RunDir(tmp).per_prompt)
        refused_or_loaded(RunDir(tmp).labels)


@settings(FUZZ, max_examples=max(FUZZ.max_examples // 8, 5))  # each draws seven figures: ~1 s
@given(st.data())
def test_figures_of_any_report_that_loads(valid_report, data):
    import shutil

    from interp.study import figures

    source, report = valid_report
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        (Path(tmp) / "report.json").write_bytes(dump(data.draw(mutated(report))))
        if refused_or_loaded(figures.load_run, tmp) is not None:
            refused_or_loaded(figures.make_all, tmp, Path(tmp) / "figures")

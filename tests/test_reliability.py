"""Bad inputs and failures: each a clear error, earlier outputs intact."""

import errno
import subprocess
import sys

import pytest
import torch
from tiny import tiny_model

from interp.core import activations
from interp.core.atomic import atomic_write_text
from interp.core.errors import InterpError


def test_prompt_longer_than_the_context_is_refused_never_truncated():
    model = tiny_model("qwen2")  # context 512 positions: the budget is the context less room to generate
    assert model.max_prompt_tokens == 256
    with pytest.raises(InterpError, match="exceed the 256-token budget"):
        model.format_chat(["word " * 400, "short"])
    assert model.format_chat(["short"]).input_ids.shape[0] == 1


def test_disk_full_during_a_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    atomic_write_text(target, "old, complete")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("os.fsync", full)
    with pytest.raises(InterpError, match="No space left"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old, complete"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_non_finite_activations_are_reported_with_their_layer():
    model = tiny_model("qwen2")
    with torch.no_grad():
        model.writers[3].weight[0, 0] = float("nan")  # block 1's attention output
    with pytest.raises(InterpError, match="layer 2"):
        activations.collect(model, ["hello", "there"], show_progress=False)


def test_out_dir_that_is_a_file_is_refused_before_any_work(tmp_path):
    out = tmp_path / "taken"
    out.write_text("precious")
    result = subprocess.run([sys.executable, "-m", "interp.cli", "run", "--out", str(out)], capture_output=True, text=True)
    assert result.returncode == 1 and "is a file" in result.stderr and "Traceback" not in result.stderr
    assert out.read_text() == "precious"


def test_no_unsafe_deserialisation_in_the_package():
    import re
    from pathlib import Path

    files = sorted(Path(__file__).parent.parent.joinpath("interp").rglob("*.py"))
    assert len(files) > 40
    source = "\n".join(p.read_text() for p in files)
    assert not re.search(r"import pickle|pickle\.loads?\(|torch\.load\(", source)
    assert "trust_remote_code=True" not in source


def test_baseline_completions_are_cached_by_model_and_prompt_and_apart_from_edited_ones(tmp_path, monkeypatch):
    import json

    from test_math import random_direction
    from tiny import tiny_model

    from interp.core.generation import complete
    from interp.core.interventions import ablate

    monkeypatch.setenv("INTERP_CACHE", str(tmp_path))
    monkeypatch.delenv("INTERP_NO_COMPLETION_CACHE")  # conftest turns the cache off for every other test
    model = tiny_model("qwen2")
    prompts = ["hello there", "What happened in 1989?"]
    first = complete(model, prompts, 6, show_progress=False)
    [cache_file] = (tmp_path / "completions").iterdir()
    entries = json.loads(cache_file.read_text())
    assert len(entries) == 2 and sorted(entries.values()) == sorted(first)
    cache_file.write_text(json.dumps(dict.fromkeys(entries, "from the cache")))
    assert complete(model, prompts, 6, show_progress=False) == ["from the cache"] * 2
    with ablate(model, random_direction(model, kind="refusal")):
        assert complete(model, prompts, 6, show_progress=False) != ["from the cache"] * 2
    assert complete(model, prompts, 7, show_progress=False) != ["from the cache"] * 2  # another budget
    monkeypatch.setenv("INTERP_NO_COMPLETION_CACHE", "1")
    assert complete(model, prompts, 6, show_progress=False) == first


# -- atomic writes: every failure one InterpError, no temporary left, normal modes, strict JSON ----------


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and text
    return text


def test_written_files_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import os

    from interp.core.atomic import atomic_save_tensors, atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic_save_tensors({"t": torch.zeros(2)}, tmp_path / "t.safetensors")
    finally:
        os.umask(old)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {"a.json": 0o644, "t.safetensors": 0o644}


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_unwritable_out_path_is_one_error_and_no_temporary(tmp_path, where):
    from pathlib import Path

    base = tmp_path / "file"
    base.write_text("precious")
    target = base / "run" / "report.json" if where == "under_a_file" else Path("/proc/interp-no-such/report.json")
    with pytest.raises(InterpError, match="could not write .*choose another --out") as err:
        atomic_write_text(target, "x")
    _one_line(err)
    assert base.read_text() == "precious" and [p.name for p in tmp_path.iterdir()] == ["file"]


def test_temporary_file_under_proc_is_refused():
    with pytest.raises(InterpError, match="could not write /proc/"):
        atomic_write_text("/proc/interp-report.json", "x")


@pytest.mark.parametrize("stage", ["write", "replace", "safetensors"])
def test_full_disk_at_any_step_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, stage):
    from safetensors import SafetensorError

    from interp.core import atomic

    target = tmp_path / "t.safetensors"
    atomic.atomic_save_tensors({"t": torch.ones(3)}, target)
    before = target.read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def safetensors_full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")

    if stage == "write":
        monkeypatch.setattr(atomic, "save_file", full)
    elif stage == "replace":
        monkeypatch.setattr("os.replace", full)
    else:
        monkeypatch.setattr(atomic, "save_file", safetensors_full)
    with pytest.raises(InterpError, match="could not write") as err:
        atomic.atomic_save_tensors({"t": torch.zeros(3)}, target)
    _one_line(err)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_json_never_holds_a_bare_nan(tmp_path, bad):
    from interp.core.atomic import atomic_write_json, atomic_write_jsonl

    with pytest.raises(InterpError, match=r"kinds\.refusal\.kl\[1\] is not a finite number"):
        atomic_write_json(tmp_path / "report.json", {"kinds": {"refusal": {"kl": [0.1, bad]}}})
    with pytest.raises(InterpError, match=r"rows.jsonl:2: score is not a finite number"):
        atomic_write_jsonl(tmp_path / "rows.jsonl", [{"score": 1.0}, {"score": bad}])
    assert list(tmp_path.iterdir()) == []


def test_text_that_no_utf8_file_can_hold_is_one_error(tmp_path):
    with pytest.raises(InterpError, match="invalid Unicode"):
        atomic_write_text(tmp_path / "labels.jsonl", "a lone surrogate \ud800")
    assert list(tmp_path.iterdir()) == []

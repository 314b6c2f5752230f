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
    model = tiny_model("qwen2")  # context 256 positions: the budget is the context less room to generate
    assert model.max_prompt_tokens == 128
    with pytest.raises(InterpError, match="exceed the 128-token budget"):
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

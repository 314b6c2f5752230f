"""`interp push`: what it would upload (exactly the export's files), the card's Hub metadata, and every
refusal, all offline. Any attempt to reach the network fails the test: the code must never try."""

import os
import socket
import subprocess
import sys

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects
from test_hostile_inputs import cli, one_line_error
from test_math import random_direction
from tiny import tiny_model

from interp.core.card import base_model_id
from interp.core.errors import InterpError
from interp.core.export import export_control_vector, export_hf
from interp.core.hub import plan_push


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """A connection attempt raises, so a command that tried one exits with an error and its test fails."""
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    model = tiny_model("qwen2", "nnsight")
    export_hf(model, random_direction(model, layer=2, kind="refusal"), root / "hf")
    cv = tiny_model("qwen2", "nnsight")
    export_control_vector(cv, random_direction(cv, layer=2), root / "cv")
    return root


def _files(directory):
    return {p.relative_to(directory).as_posix(): p.stat().st_size for p in directory.rglob("*") if p.is_file()}


def _listed(stdout: str) -> dict[str, int]:
    rows = [line.split() for line in stdout.splitlines() if line.startswith("  ") and line.endswith(" bytes")]
    return {row[0]: int(row[1].replace(",", "")) for row in rows}


def test_dry_run_lists_exactly_the_exports_files_and_its_card_metadata(monkeypatch, capsys, exported):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    code, err = cli(monkeypatch, capsys, "push", str(exported / "hf"), "--repo", "someone/tiny-abliterated",
                    "--private", "--dry-run")
    assert code == 0, err
    out = cli.stdout
    files = _files(exported / "hf")
    assert _listed(out) == files
    assert {"README.md", "reproduce.json", "interp-export.json", "config.json", "model.safetensors"} <= set(files)
    assert f"would upload {len(files)} files" in out and "https://huggingface.co/someone/tiny-abliterated" in out
    for line in ("library_name: transformers", "- interp", "- abliteration", "- refusal-direction",
                 "pipeline_tag: text-generation"):
        assert line in out, line
    assert "a token was found" in out and "nothing was uploaded" in out


def test_the_card_carries_the_hubs_front_matter(exported):
    card = ModelCard.load(exported / "hf" / "README.md")
    assert card.data.library_name == "transformers" and card.data.base_model is None  # a local model: no hub id
    assert {"interp", "abliteration", "refusal-direction"} <= set(card.data.tags)
    title = card.text.lstrip().splitlines()[0]
    assert title.startswith("# ") and title.endswith(": refusal direction, hf export")
    steering = ModelCard.load(exported / "cv" / "README.md").data
    assert "control-vector" in steering.tags and "abliteration" not in steering.tags
    assert base_model_id("embedded") == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    assert base_model_id("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert base_model_id(str(exported / "hf")) is None and base_model_id("tiny-qwen2") is None


def test_the_upload_selects_exactly_the_planned_files(exported, tmp_path):
    """upload_folder filters the folder with allow_patterns and its own ignore list: the plan's patterns keep
    every listed file (names with glob characters too) and nothing else."""
    import shutil

    copy = tmp_path / "hf"
    shutil.copytree(exported / "hf", copy)
    (copy / "notes [draft]*.md").write_text("mine")
    (copy / ".git").mkdir()
    (copy / ".git" / "config").write_text("[core]")
    plan = plan_push(copy, "someone/tiny")
    planned = dict(plan.files)
    assert planned == {k: v for k, v in _files(copy).items() if not k.startswith(".git/")}
    assert "notes [draft]*.md" in planned
    everything = sorted(_files(copy))
    selected = filter_repo_objects(everything, allow_patterns=list(plan.allow_patterns),
                                   ignore_patterns=DEFAULT_IGNORE_PATTERNS)
    assert sorted(selected) == sorted(planned)


def test_anything_but_a_complete_export_is_refused(monkeypatch, capsys, exported, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "config.json").write_text("{}")
    code, err = cli(monkeypatch, capsys, "push", str(tmp_path / "plain"), "--repo", "someone/x", "--dry-run")
    one_line_error(code, err, "is not an interp export")

    import shutil

    shutil.copytree(exported / "hf", tmp_path / "partial")
    (tmp_path / "partial" / "model.safetensors").unlink()
    code, err = cli(monkeypatch, capsys, "push", str(tmp_path / "partial"), "--repo", "someone/x", "--dry-run")
    one_line_error(code, err, "incomplete hf export", "model.safetensors")

    shutil.copytree(exported / "hf", tmp_path / "no-card")
    (tmp_path / "no-card" / "README.md").unlink()
    with pytest.raises(InterpError, match="README.md missing"):
        plan_push(tmp_path / "no-card", "someone/x")

    for repo, needle in [("no-owner", "give OWNER/NAME"), ("a/b/c", "not a Hub repository id"),
                         ("someone/bad name", "not a Hub repository id")]:
        code, err = cli(monkeypatch, capsys, "push", str(exported / "hf"), "--repo", repo, "--dry-run")
        one_line_error(code, err, needle)


def test_without_a_token_nothing_is_tried(exported, tmp_path):
    """A real process with no token anywhere (HF_TOKEN empty, an empty HF_HOME): one line, before any request."""
    env = {**os.environ, "HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf-home"), "HUGGING_FACE_HUB_TOKEN": ""}
    for name in ("HF_TOKEN_PATH", "HF_STORED_TOKENS_PATH", "HF_OIDC_RESOURCE"):
        env.pop(name, None)
    result = subprocess.run([sys.executable, "-m", "interp.cli", "push", str(exported / "hf"), "--repo", "someone/x"],
                            capture_output=True, text=True, env=env)
    one_line_error(result.returncode, result.stderr, "no Hugging Face token", "HF_TOKEN")
    assert result.stdout == ""

"""`interp export --format hf|gguf|lora|control-vector` through the command line: options refused before the
model loads, and a run's measurements carried into the model card."""

import json
from pathlib import Path

import gguf
import pytest
from test_hostile_inputs import cli, no_model_load, one_line_error  # noqa: F401 (no_model_load is a fixture)
from test_math import random_direction
from tiny import tiny_model

from interp.core import directions as dirs
from interp.core.model import load_model

REPORT = Path(__file__).parent.parent / "results" / "qwen2.5-coder-0.5b" / "report.json"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny qwen2 saved as an HF directory, and a refusal direction at layer 2 made for it."""
    root = tmp_path_factory.mktemp("export-cli")
    model = tiny_model("qwen2", "nnsight")
    model.hf.save_pretrained(root / "model")
    model.tokenizer.save_pretrained(root / "model")
    loaded = load_model(str(root / "model"), dtype="fp32", backend="nnsight")
    dirs.save([random_direction(loaded, layer=2, kind="refusal")], root / "dir")
    return root, loaded.fingerprint


@pytest.mark.usefixtures("no_model_load")
@pytest.mark.parametrize("args, needle", [
    (("--format", "onnx"), "--format must be one of hf, gguf, lora, control-vector"),
    (("--format", "control-vector", "--coef", "nan"), "--coef must be a finite number"),
    (("--format", "lora", "--coef", "2"), "--coef applies to --format control-vector only"),
    (("--run", "NOWHERE"), "no report.json"),
])
def test_export_options_are_refused_before_the_model_loads(monkeypatch, capsys, tmp_path, args, needle):
    dirs.save([random_direction(tiny_model(), kind="refusal")], tmp_path / "dir")
    args = tuple(a.replace("NOWHERE", str(tmp_path / "nowhere")) for a in args)
    code, err = cli(monkeypatch, capsys, "export", "--model", str(tmp_path / "m"), "--direction", str(tmp_path / "dir"),
                    "--kind", "refusal", "--out", str(tmp_path / "out"), *args)
    one_line_error(code, err, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("no_model_load")
def test_gguf_export_of_an_unconvertible_hf_directory_is_refused_before_the_model_loads(monkeypatch, capsys, tmp_path):
    dirs.save([random_direction(tiny_model(), kind="refusal")], tmp_path / "dir")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "gemma2"}))
    code, err = cli(monkeypatch, capsys, "export", "--model", str(tmp_path / "m"), "--direction", str(tmp_path / "dir"),
                    "--kind", "refusal", "--format", "gguf", "--out", str(tmp_path / "out"))
    one_line_error(code, err, "converts qwen2, qwen3, llama, mistral models from HF weights, not 'gemma2'")
    assert not (tmp_path / "out").exists()


@pytest.mark.usefixtures("no_model_load")
def test_export_into_a_non_empty_directory_is_refused_before_the_model_loads(monkeypatch, capsys, tmp_path):
    dirs.save([random_direction(tiny_model(), kind="refusal")], tmp_path / "dir")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    for fmt in ("hf", "lora", "control-vector"):
        code, err = cli(monkeypatch, capsys, "export", "--direction", str(tmp_path / "dir"), "--kind", "refusal",
                        "--format", fmt, "--out", str(tmp_path / "out"))
        one_line_error(code, err, "is not empty")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_lora_and_control_vector_exports_carry_the_run_into_the_card(monkeypatch, capsys, saved, tmp_path):
    root, fingerprint = saved
    report = json.loads(REPORT.read_text())
    report["model"]["fingerprint"] = fingerprint  # the run's measurements, as if made on this model
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text(json.dumps(report))
    refusal = report["kinds"]["refusal"]
    common = ("export", "--model", str(root / "model"), "--direction", str(root / "dir"), "--kind", "refusal",
              "--run", str(tmp_path / "run"))

    code, err = cli(monkeypatch, capsys, *common, "--format", "lora", "--out", str(tmp_path / "lora"))
    assert code == 0, err
    card = (tmp_path / "lora" / "README.md").read_text()
    assert fingerprint in card and "| judge |" in card and f"{refusal['kl_harmless']:.4g}" in card
    assert f"{refusal['baseline']['suppression_rate']:.4g}" in card
    assert f"{refusal['ablated']['suppression_rate']:.4g}" in card
    recipe = json.loads((tmp_path / "lora" / "reproduce.json").read_text())
    assert recipe["command"] == ["interp", *common, "--format", "lora", "--out", str(tmp_path / "lora")]
    assert recipe["arguments"]["format"] == "lora" and recipe["arguments"]["run"] == str(tmp_path / "run")
    assert (tmp_path / "lora" / "adapter_model.safetensors").is_file()

    code, err = cli(monkeypatch, capsys, *common, "--format", "control-vector", "--coef", "-2",
                    "--out", str(tmp_path / "cv"))
    assert code == 0, err
    reader = gguf.GGUFReader(tmp_path / "cv" / "control-vector.gguf")
    assert [t.name for t in reader.tensors] == ["direction.1"]
    assert "| coef | -2 |" in (tmp_path / "cv" / "README.md").read_text()


def test_a_run_of_another_model_is_refused(monkeypatch, capsys, saved, tmp_path):
    root, _ = saved
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "report.json").write_text(REPORT.read_text())
    code, err = cli(monkeypatch, capsys, "export", "--model", str(root / "model"), "--direction", str(root / "dir"),
                    "--kind", "refusal", "--format", "lora", "--run", str(tmp_path / "run"),
                    "--out", str(tmp_path / "out"))
    one_line_error(code, err, "measured another model")
    assert not (tmp_path / "out").exists()

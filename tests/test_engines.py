"""Engines: interp's own generation behind the Engine protocol, the vLLM engine's prompt ids, stop tokens and
decoding (pure functions, checked against interp's path on tiny models; vLLM itself needs a GPU), and
`interp evaluate --engine` refusing what it cannot do in one line."""

import json
import os
import subprocess
import sys

import pytest
import torch
from test_hostile_inputs import cli, no_model_load, one_line_error  # noqa: F401 (no_model_load is a fixture)
from test_math import random_direction
from tiny import CHATML, SPECIALS, byte_tokenizer, tiny_model
from tokenizers import processors
from transformers import GenerationConfig

from interp.core import engines
from interp.core.chat import chat_token_ids
from interp.core.errors import InterpError
from interp.core.export import export_hf, export_lora
from interp.core.generation import complete

PROMPTS = ["hello there", "What happened in 1989?", "说中文", "a much longer prompt with several words in it"]


def test_transformers_engine_is_interp_generation_and_the_vllm_recipe_reproduces_it():
    """The engine returns interp.complete's completions; and the recipe the vLLM engine follows (interp's
    token ids, unpadded; greedy under the generation config; `decode`) gives the same text through HF."""
    model = tiny_model("qwen2", "nnsight")
    engine = engines.TransformersEngine(model, show_progress=False)
    got = engine.complete(PROMPTS, 10)
    assert got == complete(model, PROMPTS, 10, show_progress=False)
    assert engine.describe()["engine"] == "transformers" and engine.describe()["fingerprint"] == model.fingerprint
    assert any(got)  # random weights still say something: the comparison is not of empty strings

    settings = engines.greedy_settings(model.hf.generation_config, model.tokenizer, 10)
    for prompt, ids, text in zip(PROMPTS, chat_token_ids(model.tokenizer, PROMPTS), got, strict=True):
        with torch.no_grad():
            out = model.hf.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                    do_sample=False, max_new_tokens=settings["max_tokens"],
                                    eos_token_id=settings["stop_token_ids"],
                                    repetition_penalty=settings["repetition_penalty"],
                                    pad_token_id=model.tokenizer.pad_token_id)
        assert engines.decode(model.tokenizer, out[0, len(ids):].tolist()) == text, prompt


def _bos_tokenizer():
    """A tokenizer whose plain call prepends a BOS and whose template writes one too (as Llama's do)."""
    tok = byte_tokenizer()
    bos = SPECIALS[0]
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, tok.convert_tokens_to_ids(bos))])
    tok.bos_token = bos
    tok.chat_template = "{{ bos_token }}" + CHATML
    return tok


@pytest.mark.parametrize("make_tokenizer", [byte_tokenizer, _bos_tokenizer])
def test_vllm_prompt_ids_are_interps_token_for_token(make_tokenizer):
    model = tiny_model("llama", "nnsight")
    model.tokenizer = make_tokenizer()
    batch = model.format_chat(PROMPTS)  # what interp's own generation feeds the model (left padded)
    ours = [row[mask.bool()].tolist() for row, mask in zip(batch.input_ids, batch.attention_mask, strict=True)]
    ids = chat_token_ids(model.tokenizer, PROMPTS)
    assert ids == ours
    assert [len(i) for i in ids] == model.prompt_lengths(PROMPTS)
    assert [model.tokenizer.decode(i) for i in ids] == [model.chat_text(p) for p in PROMPTS]
    bos = model.tokenizer.bos_token_id
    if bos is not None:  # text handed to an engine that tokenizes it itself would start with two BOS
        assert [i[:2].count(bos) for i in ids] == [1] * len(PROMPTS)
        assert model.tokenizer(model.chat_text(PROMPTS[0]))["input_ids"][:2] == [bos, bos]


def test_greedy_settings_follow_the_generation_config():
    tok = byte_tokenizer()
    settings = engines.greedy_settings(GenerationConfig(eos_token_id=[7, 5, 7], repetition_penalty=1.05), tok, 64)
    assert settings == {"temperature": 0.0, "max_tokens": 64, "stop_token_ids": [5, 7], "repetition_penalty": 1.05,
                        "skip_special_tokens": True}
    settings = engines.greedy_settings(GenerationConfig(), tok, 8)
    assert settings["stop_token_ids"] == [tok.eos_token_id] and settings["repetition_penalty"] == 1.0


def test_vllm_is_refused_in_one_line_without_a_gpu_or_without_vllm(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InterpError, match="needs a CUDA GPU; this machine has none"):
        engines.VLLMEngine("some/model")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(InterpError, match="--tensor-parallel 4 needs 4 GPUs; this machine has 2"):
        engines.check_vllm_ready(4)
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed
    with pytest.raises(InterpError, match="pip install vllm"):
        engines.check_vllm_ready(2)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine-exports")
    model = tiny_model("qwen2", "nnsight")
    d = random_direction(model, layer=2, kind="refusal")
    export_lora(model, d, root / "lora")
    export_hf(model, d, root / "hf")
    return root


def test_vllm_model_dir_takes_hf_exports_and_hub_ids_only(exports):
    assert engines.vllm_model_dir(str(exports / "hf"))["format"] == "hf"
    assert engines.vllm_model_dir("Qwen/Qwen2.5-7B-Instruct") is None  # vLLM fetches it
    for spec, needle in [(str(exports / "lora"), "is a lora export"), ("embedded", "export it first"),
                         (str(exports), "no config.json")]:
        with pytest.raises(InterpError, match=needle):
            engines.vllm_model_dir(spec)


def test_engine_vllm_on_a_machine_without_a_gpu_says_so_in_one_line(exports, tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, whatever machine runs the test
    result = subprocess.run([sys.executable, "-m", "interp.cli", "evaluate", "--model", str(exports / "hf"),
                             "--engine", "vllm", "--tensor-parallel", "2", "--prompts", "harmful",
                             "--out", str(tmp_path / "eval.json")], capture_output=True, text=True, env=env)
    one_line_error(result.returncode, result.stderr, "--engine vllm needs a CUDA GPU; this machine has none")
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.usefixtures("no_model_load")
@pytest.mark.parametrize("args, needle", [
    (("--engine", "vllm", "--direction", "d", "--kind", "refusal"), "export the edit first"),
    (("--engine", "vllm", "--harmless", "harmless"), "--harmless needs one"),
    (("--engine", "vllm", "--intervention", "steer"), "--intervention needs one"),
    (("--engine", "onnx",), "unknown --engine 'onnx'"),
    (("--tensor-parallel", "2",), "--tensor-parallel applies to --engine vllm"),
    (("--coef", "2",), "--coef applies to an intervention: add --direction"),
    (("--direction", "d"), "--direction needs --kind"),
])
def test_engine_options_that_conflict_are_refused_before_any_load(monkeypatch, capsys, tmp_path, args, needle):
    code, err = cli(monkeypatch, capsys, "evaluate", "--model", str(tmp_path / "m"), "--prompts", "harmful",
                    "--out", str(tmp_path / "e.json"), *args)
    one_line_error(code, err, needle)
    assert not (tmp_path / "e.json").exists()


def test_evaluate_an_export_as_it_is_on_the_transformers_engine(monkeypatch, capsys, exports, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("What happened in 1989?\nhello there\n")
    code, err = cli(monkeypatch, capsys, "evaluate", "--model", str(exports / "hf"), "--prompts", str(prompts),
                    "--dtype", "fp32", "--max-new-tokens", "6", "--out", str(tmp_path / "e.json"))
    assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["model"]["engine"] == "transformers" and result["export"]["format"] == "hf"
    assert result["export"]["direction"]["kind"] == "refusal" and result["judge"] == "markers"
    assert result["rates"]["all"]["n"] == 2 and result["max_new_tokens"] == 6
    from interp.core.model import load_model

    expected = complete(load_model(str(exports / "hf"), dtype="fp32"), [r["prompt"] for r in result["per_prompt"]],
                        6, show_progress=False)
    assert [r["text"] for r in result["per_prompt"]] == expected
    assert {r["label"] for r in result["per_prompt"]} <= {"refusal", "deflection", "invented", "faithful"}
    assert "engine transformers" in cli.stdout
    # a .txt file carries no facts: whatever the markers judge passes is unchecked, never "faithful"
    passed = sum(r["label"] == "faithful" for r in result["per_prompt"])
    assert result["rates"]["all"]["unchecked_rate"] == passed / 2
    assert (result["rates"]["all"]["faithful_rate"] is None) == (passed > 0)

"""The export formats beyond `hf`: the LoRA adapter equals the orthogonalised model, the control vector is the
steering vector where llama.cpp reads it, and every export carries its card and recipe."""

import json
import time

import gguf
import numpy as np
import pytest
import torch
from peft import PeftModel
from test_math import random_direction
from tiny import tiny_model
from tiny_archs import tiny_hf
from transformers import AutoModelForCausalLM

from interp.core.card import ExportInfo
from interp.core.errors import InterpError
from interp.core.export import export, export_control_vector, export_hf, export_lora
from interp.core.interventions import ablate
from interp.core.model import wrap_model

PROMPTS = ["hello", "what happened in 1989?"]


def _logits(hf, batch) -> torch.Tensor:
    with torch.no_grad():
        return hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                  position_ids=batch.position_ids).logits


@pytest.mark.parametrize("family", ["qwen2", "llama"])
def test_lora_adapter_equals_hf_export_and_hook_ablation(family, tmp_path):
    started = time.perf_counter()
    model = tiny_model(family, "nnsight")
    d = random_direction(model)
    batch = model.format_chat(PROMPTS)
    mask = batch.attention_mask.bool()
    with ablate(model, d):
        hooked = model.backend.run(batch, logits="all").logits
    export_lora(tiny_model(family, "nnsight"), d, tmp_path / "lora")
    export_hf(tiny_model(family, "nnsight"), d, tmp_path / "hf")
    merged_export = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)

    adapted = PeftModel.from_pretrained(tiny_model(family, "nnsight").hf, tmp_path / "lora")
    got = _logits(adapted, batch)
    base = _logits(tiny_model(family, "nnsight").hf, batch)
    assert (got[mask] - base[mask]).abs().max() > 1e-2  # the adapter really changes the model
    torch.testing.assert_close(got[mask], _logits(merged_export, batch)[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(got[mask], hooked[mask], atol=1e-5, rtol=0)

    merged = adapted.merge_and_unload().state_dict()
    expected = merged_export.state_dict()
    assert set(merged) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(merged[name], tensor, atol=1e-6, rtol=0, msg=name)
    print(f"{family}: lora vs hf vs hooks in {time.perf_counter() - started:.1f} s")


@pytest.mark.parametrize("family", ["gemma3_text", "qwen2_moe"])
def test_lora_covers_post_norms_tied_heads_and_fused_experts(family, tmp_path):
    """Gemma 3 (post-norm: the oblique edit; tied head) and Qwen2-MoE (fused experts and a shared expert)."""
    def fresh():
        hf, tok = tiny_hf(family)
        if family == "gemma3_text":
            hf.config.tie_word_embeddings = True
            hf.tie_weights()
        return wrap_model(hf, tok, spec=f"tiny-{family}", backend="nnsight")

    model = fresh()
    d = random_direction(model)
    batch = model.format_chat(PROMPTS)
    mask = batch.attention_mask.bool()
    with pytest.warns(UserWarning, match="post-norm") if family == "gemma3_text" else _nothing():
        export_hf(fresh(), d, tmp_path / "hf")
    export_lora(fresh(), d, tmp_path / "lora")
    merged_export = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32)
    expected = _logits(merged_export, batch)[mask]
    with pytest.warns(UserWarning) if family == "gemma3_text" else _nothing():  # PEFT: "tie_word_embeddings"
        adapted = PeftModel.from_pretrained(fresh().hf, tmp_path / "lora")
    torch.testing.assert_close(_logits(adapted, batch)[mask], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(_logits(adapted.merge_and_unload(), batch)[mask], expected, atol=1e-5, rtol=0)
    recorded = json.loads((tmp_path / "lora" / "interp-export.json").read_text())
    assert recorded["writers_edited"] == recorded["writers_declared"] == len(model.writers)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_control_vector_is_the_steering_vector_where_llama_cpp_reads_it(tmp_path):
    model = tiny_model("qwen2", "nnsight", layers=4)
    d = random_direction(model, layer=2)
    out = export_control_vector(model, d, tmp_path / "cv", coef=-1.5)
    reader = gguf.GGUFReader(out / "control-vector.gguf")
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "controlvector"
    assert fields["controlvector.model_hint"] == "qwen2"
    assert fields["controlvector.layer_count"] == 1
    assert reader.fields["controlvector.layer_count"].types[0] == gguf.GGUFValueType.UINT32
    (tensor,) = reader.tensors
    assert tensor.name == "direction.1"  # resid_pre of block 2 is the output of block 1
    assert tensor.tensor_type == gguf.GGMLQuantizationType.F32 and list(tensor.shape) == [model.d_model]
    np.testing.assert_allclose(np.asarray(tensor.data), (d.raw * -1.5).numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("layer", [0, 1, 4])
def test_control_vector_refuses_layers_llama_cpp_cannot_steer(layer, tmp_path):
    model = tiny_model("qwen2", "nnsight", layers=4)
    with pytest.raises(InterpError, match="control vector steers"):
        export_control_vector(model, random_direction(model, layer=layer), tmp_path / "cv")
    assert not (tmp_path / "cv").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["hf", "lora", "control-vector"])
def test_every_export_has_a_card_and_a_recipe(fmt, tmp_path):
    model = tiny_model("qwen2", "nnsight")
    d = random_direction(model, layer=2)
    d = type(d)(**{**d.__dict__, "scores": {"kl": 0.125, "refusal_score": -3.5}})
    info = ExportInfo(argv=("interp", "export", "--format", fmt, "--coef", "2.0"),
                      arguments={"format": fmt, "coef": 2.0},
                      run={"dir": "runs/x", "suppression before": 0.875, "suppression after": 0.0625, "judge": "markers"})
    fingerprint = model.fingerprint
    out = export(model, d, tmp_path / "out", fmt, coef=2.0, info=info)
    card = (out / "README.md").read_text()
    for text in (fingerprint, "tiny-qwen2", "censorship", "| layer | 2 |", "| position | -1 |", "mean_diff",
                 "0.125", "-3.5", "0.875", "0.0625", "markers", "interp export --format " + fmt):
        assert text in card, text
    recipe = json.loads((out / "reproduce.json").read_text())
    assert recipe["command"] == list(info.argv) and recipe["arguments"] == {"format": fmt, "coef": 2.0}
    assert recipe["format"] == fmt and recipe["direction"]["layer"] == 2
    assert recipe["versions"]["interp"] and recipe["versions"]["torch"] == torch.__version__
    if fmt == "control-vector":
        assert "| coef | 2 |" in card
    with pytest.raises(InterpError, match="not empty"):
        export(tiny_model("qwen2", "nnsight"), d, out, fmt, coef=2.0)


@pytest.mark.parametrize("fmt", ["hf", "lora", "control-vector"])
def test_a_failed_write_leaves_nothing(fmt, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    model = tiny_model("qwen2", "nnsight")
    monkeypatch.setattr("pathlib.Path.write_text", broken)  # the card, after the format's own files
    with pytest.raises(InterpError, match="nothing was kept"):
        export(model, random_direction(model, layer=2), tmp_path / "out", fmt)
    assert list(tmp_path.iterdir()) == []

import torch
from test_math import random_direction
from tiny import tiny_model
from transformers import AutoModelForCausalLM

from interp.core.export import export_hf
from interp.core.interventions import ablate


def test_export_reloads_and_equals_hook_ablation(tmp_path):
    hooked = tiny_model("qwen2", "nnsight")
    d = random_direction(hooked)
    batch = hooked.format_chat(["hello", "what happened in 1989?"])
    with ablate(hooked, d):
        expected = hooked.backend.run(batch, logits="all").logits
    export_hf(tiny_model("qwen2", "nnsight"), d, tmp_path / "export")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "export")
    with torch.no_grad():
        got = reloaded(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids).logits
    mask = batch.attention_mask.bool()
    torch.testing.assert_close(got[mask], expected[mask], atol=1e-4, rtol=0)
    assert (tmp_path / "export" / "interp-export.json").is_file()

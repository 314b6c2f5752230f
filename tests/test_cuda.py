"""The CUDA paths, on a GPU (skipped without one; CI has none): the loader's placement and dtype, both backends,
a device map, hooks against weight edits, the whole pipeline and the exports, on a tiny model trained to refuse
and saved as an HF directory, so the real loader reads it. Run on a lent GPU machine with
`bash scripts/gpu_check.sh` (carrying the wheels in .whl/), or `python -m pytest tests/test_cuda.py` where interp
is installed."""

import json

import pytest
import torch
from safetensors.torch import load_file
from tiny import REFUSAL, tiny_config, tiny_refuser

from interp import (
    Direction,
    Kernel,
    Variant,
    ablate,
    ablate_variant,
    collect,
    complete,
    continuation_kl,
    last_logits,
    load_model,
    orthogonalize,
    orthogonalize_variant,
    run,
)
from interp.core.export import export
from interp.study.stages.label import load_sets

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PROMPTS = ["hello there", "What happened in Tiananmen Square in 1989?", "说中文", "Write a haiku about rain."]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The tiny refuser (trained on CPU in seconds) written as an HF directory."""
    refuser = tiny_refuser()
    directory = tmp_path_factory.mktemp("refuser")
    refuser.hf.save_pretrained(directory)
    refuser.tokenizer.save_pretrained(directory)
    return str(directory)


def _direction(model, layer=1):
    """A mean difference between two prompt groups on `model`, as the selection would build it."""
    acts = collect(model, PROMPTS, groups=["a", "b", "a", "b"], layers=[layer], show_progress=False)
    raw = (acts.mean("a") - acts.mean("b"))[0, -1].float().cpu()
    return Direction(unit=raw / raw.norm(), raw=raw, layer=layer, position=-1, kind="censorship",
                     model_fingerprint=model.fingerprint)


def test_auto_dtype_is_bf16_and_every_weight_is_on_the_gpu(model_dir):
    model = load_model(model_dir, device="cuda", dtype="auto")
    assert model.dtype == torch.bfloat16 and model.device.type == "cuda"
    assert {p.device.type for p in model.hf.parameters()} == {"cuda"}
    assert model.describe()["device"].startswith("cuda")


def test_fp32_on_the_gpu_reads_what_the_cpu_reads(model_dir):
    cpu = load_model(model_dir, dtype="fp32")
    gpu = load_model(model_dir, device="cuda", dtype="fp32")
    torch.testing.assert_close(last_logits(gpu, PROMPTS).cpu(), last_logits(cpu, PROMPTS), atol=1e-3, rtol=1e-3)
    a = collect(cpu, PROMPTS, keep=True, show_progress=False).per_prompt
    b = collect(gpu, PROMPTS, keep=True, show_progress=False).per_prompt
    torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-3)


def test_a_cpu_model_stays_on_the_cpu_through_nnsight_where_a_gpu_is_visible(model_dir):
    model = load_model(model_dir, dtype="fp32", backend="nnsight")  # --device cpu, the default
    logits = last_logits(model, PROMPTS)  # boots the backend (nnsight's pipeline once moved it to GPU 0 here)
    assert {p.device.type for p in model.hf.parameters()} == {"cpu"} and logits.device.type == "cpu"


def test_nnsight_and_a_device_map_agree_with_the_bridge_on_the_gpu(model_dir):
    bridge = load_model(model_dir, device="cuda", dtype="fp32")
    nnsight = load_model(model_dir, device="cuda", dtype="fp32", backend="nnsight")
    mapped = load_model(model_dir, dtype="fp32", device_map="auto")
    assert mapped.device.type == "cuda"
    reference = collect(bridge, PROMPTS, keep=True, show_progress=False).per_prompt
    for other in (nnsight, mapped):
        torch.testing.assert_close(collect(other, PROMPTS, keep=True, show_progress=False).per_prompt, reference,
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ["transformer_lens", "nnsight"])
def test_continuations_sharing_a_cached_prompt_on_the_gpu_score_as_on_the_cpu(model_dir, backend):
    from interp.core.measure import continuation_nll

    cpu = load_model(model_dir, dtype="fp32", backend=backend)
    gpu = load_model(model_dir, device="cuda", dtype="fp32", backend=backend)
    d = _direction(cpu)
    prompts = [p for p in PROMPTS for _ in range(3)]
    replies = ["yes", "no", "I cannot say."] * len(PROMPTS)
    scores = [torch.tensor(continuation_nll(m, prompts, replies, lambda m=m: ablate(m, d))) for m in (cpu, gpu)]
    torch.testing.assert_close(scores[1], scores[0], atol=1e-3, rtol=1e-3)


def test_hook_ablation_equals_weight_orthogonalisation_on_the_gpu(model_dir):
    hooked = load_model(model_dir, device="cuda", dtype="fp32")
    direction = _direction(hooked)
    base = last_logits(hooked, PROMPTS)
    with ablate(hooked, direction):
        via_hook = last_logits(hooked, PROMPTS)
    assert (via_hook - base).abs().max() > 1e-2  # the edit matters, so the agreement below means something
    edited = load_model(model_dir, device="cuda", dtype="fp32")
    orthogonalize(edited, direction)
    torch.testing.assert_close(last_logits(edited, PROMPTS), via_hook, atol=1e-4, rtol=0)
    kl = continuation_kl(hooked, PROMPTS, lambda: ablate(hooked, direction), tokens=4)
    assert kl > 0


def test_a_kernel_variant_agrees_as_hook_and_weights_on_the_gpu(model_dir):
    hooked = load_model(model_dir, device="cuda", dtype="fp32")
    variant = Variant(directions=(_direction(hooked),), kernel=Kernel(peak_layer=1, width=1.5, peak=1.2, floor=0.4))
    with ablate_variant(hooked, variant):
        via_hook = last_logits(hooked, PROMPTS)
    edited = load_model(model_dir, device="cuda", dtype="fp32")
    orthogonalize_variant(edited, variant)
    torch.testing.assert_close(last_logits(edited, PROMPTS), via_hook, atol=1e-4, rtol=0)


def test_bf16_generation_on_the_gpu_refuses_what_it_was_taught_to(model_dir):
    model = load_model(model_dir, device="cuda", dtype="bf16")
    censored = "What happened in Tiananmen Square in 1989?"
    taught = [p.prompt for split in load_sets(tiny_config())["censored"].values() for p in split.items]
    completions = complete(model, taught[:4], max_new_tokens=16, show_progress=False)
    assert sum(c.startswith(REFUSAL[:12]) for c in completions) >= 3, completions
    assert len(complete(model, [censored], max_new_tokens=8, show_progress=False)) == 1


def test_the_whole_run_on_the_gpu_labels_selects_and_reports(model_dir, tmp_path):
    model = load_model(model_dir, device="cuda", dtype="bf16")
    report = run(model, tmp_path, tiny_config())
    censorship = report.kinds["censorship"]
    assert censorship.baseline.suppression_rate > 0.5  # it refuses on the GPU as it did on the CPU
    assert json.loads((tmp_path / "report.json").read_text())["model"]["device"].startswith("cuda")
    tensors = load_file(str(tmp_path / "directions.safetensors"))  # written from GPU tensors, read on CPU
    assert all(t.device.type == "cpu" and torch.isfinite(t).all() for t in tensors.values())


@pytest.mark.parametrize("fmt", ["hf", "lora"])
def test_exports_written_from_a_gpu_model_load_on_the_cpu(model_dir, tmp_path, fmt):
    gpu = load_model(model_dir, device="cuda", dtype="fp32")
    direction = _direction(gpu)
    with ablate(gpu, direction):
        via_hook = last_logits(gpu, PROMPTS).cpu()
    fresh = load_model(model_dir, device="cuda", dtype="fp32")  # export edits weights no backend has wrapped
    out = export(fresh, direction, tmp_path / fmt, fmt)
    if fmt == "hf":
        reloaded = load_model(str(out), dtype="fp32")
        torch.testing.assert_close(last_logits(reloaded, PROMPTS), via_hook, atol=1e-4, rtol=0)
    elif fmt == "lora":
        from peft import PeftModel

        cpu = load_model(model_dir, dtype="fp32")
        adapted = PeftModel.from_pretrained(cpu.hf, str(out)).merge_and_unload()
        batch = cpu.format_chat(PROMPTS)
        with torch.no_grad():
            logits = adapted(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, -1]
        torch.testing.assert_close(logits.float(), via_hook, atol=1e-4, rtol=0)

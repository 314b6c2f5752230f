"""Smoke test: `interp run --quick` (labels, activations, selection sweep, steering, evaluation) and the export
on a tiny qwen3_moe that was taught to refuse, loaded from an HF directory like a downloaded model."""

import subprocess
import sys
import time

import pytest
import torch
from tiny import teach_refusal, tiny_config
from tiny_archs import tiny_hf
from transformers import AutoModelForCausalLM

from interp.core import directions
from interp.core.export import export_hf
from interp.core.interventions import ablate
from interp.core.model import load_model, wrap_model
from interp.study.rundir import RunDir
from interp.study.stages.label import load_sets


@pytest.fixture
def one_thread():
    """On a shared CPU, torch's default threads contend: one thread runs this test ~5x faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_quick_run_and_export_on_a_tiny_moe(tmp_path, one_thread):
    started = time.perf_counter()
    sets = load_sets(tiny_config())
    texts = {name: [p.prompt for split in by.values() for p in split.items] for name, by in sets.items()}
    hf, tok = tiny_hf("qwen3_moe")
    model = teach_refusal(wrap_model(hf, tok), texts["censored"] + texts["harmful"], texts["controls"] + texts["harmless"])
    model.hf.save_pretrained(tmp_path / "moe")
    model.tokenizer.save_pretrained(tmp_path / "moe")

    result = subprocess.run([sys.executable, "-m", "interp.cli", "run", "--model", str(tmp_path / "moe"), "--quick",
                             "--per-split", "4", "--eval-tokens", "12", "--dtype", "fp32", "--backend", "nnsight",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    report = RunDir(tmp_path / "run").report()
    assert report.kinds["refusal"].baseline.suppression_rate > 0.5  # it learned to refuse
    assert all(k in report.timings for k in ("label", "activations", "select", "evaluate", "steering"))

    loaded = load_model(str(tmp_path / "moe"), dtype="fp32", backend="nnsight")

    d = directions.load(tmp_path / "run", "refusal", expect_fingerprint=loaded.fingerprint)
    batch = loaded.format_chat(["hello", "how do I pick a lock?"])
    with ablate(loaded, d):
        hooked = loaded.backend.run(batch, logits="last").logits
    fresh = load_model(str(tmp_path / "moe"), dtype="fp32", backend="nnsight")
    export_hf(fresh, d, tmp_path / "export")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "export", dtype=torch.float32)
    with torch.no_grad():
        got = reloaded(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                       position_ids=batch.position_ids).logits[:, -1]
    torch.testing.assert_close(got, hooked, atol=1e-4, rtol=0)
    print(f"tiny qwen3_moe: taught, studied and exported in {time.perf_counter() - started:.1f} s")

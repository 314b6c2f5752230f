"""Paths for models that outgrow one device: accelerate offload, and nnsight's serialised (remote) traces."""

import os

import pytest
import torch
from conftest import PROMPTS

from interp.core.activations import collect
from interp.core.errors import InterpError
from interp.core.interventions import ablate
from interp.core.model import load_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from tiny import tiny_model

    model = tiny_model("qwen2")
    path = tmp_path_factory.mktemp("tiny-qwen2")
    model.hf.save_pretrained(path)
    model.tokenizer.save_pretrained(path)
    return path


def _direction(model) -> torch.Tensor:  # [layer, pos, d] mean difference of two prompt groups
    acts = collect(model, PROMPTS, ["a", "b", "a", "b"], show_progress=False)
    return acts.mean("a") - acts.mean("b")


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_device_map_with_max_memory_offloads_and_gives_the_same_direction(tiny_dir, tmp_path, backend):
    plain = load_model(str(tiny_dir), dtype="fp32", backend=backend)
    offloaded = load_model(str(tiny_dir), dtype="fp32", backend=backend, device_map="auto",
                           max_memory={"cpu": "400KB"}, offload_folder=tmp_path)
    assert {"cpu", "disk"} <= set(offloaded.hf.hf_device_map.values())  # the cap really forced offload
    torch.testing.assert_close(_direction(offloaded), _direction(plain), atol=1e-5, rtol=0)


def test_serialised_traces_equal_local_ones_with_edits_and_generation(tiny_dir):
    """nnsight's remote="local" serialises each trace and runs the deserialised one: what NDIF receives."""
    from test_math import random_direction

    from interp.core.generation import complete
    from interp.core.measure import continuation_nll

    model = load_model(str(tiny_dir), dtype="fp32", backend="nnsight")
    d = random_direction(model, kind="refusal")
    batch = model.format_chat(PROMPTS)
    results = {}
    choices = ["yes", "no", "perhaps not"]  # three continuations of each prompt: cached locally, whole when sent
    for mode in (False, "local"):
        model.backend.remote = mode
        with ablate(model, d):
            run = model.backend.run(batch, read=[0, 1], logits="last")
            text = complete(model, PROMPTS, 6, show_progress=False)
        scores = continuation_nll(model, [p for p in PROMPTS for _ in choices], choices * len(PROMPTS),
                                  lambda: ablate(model, d))
        results[mode] = (run, text, scores)
    assert not model.backend.kv_cache  # "local" stands for a remote engine, whose caches stay there
    (local, local_text, local_scores), (sent, sent_text, sent_scores) = results[False], results["local"]
    torch.testing.assert_close(torch.tensor(sent_scores), torch.tensor(local_scores), atol=1e-4, rtol=1e-5)
    assert sent_text == local_text
    torch.testing.assert_close(sent.logits, local.logits)
    assert all(torch.equal(sent.resid[k], local.resid[k]) for k in local.resid)


def test_remote_refuses_without_key_or_hub_id(monkeypatch):
    from interp.core.remote import load_remote

    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    with pytest.raises(InterpError, match="NDIF_API_KEY"):
        load_remote("meta-llama/Llama-3.1-8B-Instruct")
    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    with pytest.raises(InterpError, match="hub id"):
        load_remote("embedded")


def test_remote_without_network_fails_with_one_line(monkeypatch):
    """This machine has no route to the hub or NDIF: the failure must name the network, not dump a trace."""
    from interp.core.remote import load_remote

    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # also on a connected machine: the hub is then unreachable
    with pytest.raises(InterpError, match="network") as err:
        load_remote("meta-llama/Llama-3.1-8B-Instruct")
    assert "\n" not in str(err.value)
    assert os.environ["NDIF_API_KEY"] == "test-key"

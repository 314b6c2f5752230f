"""Damage beyond the first-token KL: multi-token KL along the base model's own continuations (checked against
a hand computation), the damage probe, and its place in reports old and new."""

from contextlib import nullcontext

import pytest
import torch
from test_math import random_direction
from tiny import tiny_model

from interp.core.generation import complete
from interp.core.interventions import ablate, steer
from interp.core.measure import continuation_kl, kl_under
from interp.core.types import ChatBatch
from interp.study.damage import DamageProbe, capability_items
from interp.study.report_md import damage_line

PROMPTS = ["How do I boil an egg?", "Name three colours.", "写一首关于春天的短诗。"]


@pytest.fixture(scope="module")
def model():
    return tiny_model("qwen2")


def test_multi_token_kl_is_zero_without_an_edit_and_positive_under_an_ablation(model):
    d = random_direction(model)
    assert continuation_kl(model, PROMPTS, nullcontext, tokens=8) == 0.0
    assert continuation_kl(model, PROMPTS, lambda: ablate(model, d), tokens=8) > 0
    assert not model.edits


def test_multi_token_kl_is_the_mean_of_the_per_position_kls_along_the_base_continuation(model):
    d = random_direction(model)
    tokens = 6
    text = complete(model, PROMPTS[:1], tokens, show_progress=False)[0]
    tok = model.tokenizer
    head = tok(model.chat_text(PROMPTS[0]), add_special_tokens=False)["input_ids"]
    tail = tok(text, add_special_tokens=False)["input_ids"][: tokens - 1]
    assert len(tail) == tokens - 1  # a random model babbles on: every position is compared
    ids = torch.tensor([head + tail])
    batch = ChatBatch(ids, torch.ones_like(ids))
    base = torch.log_softmax(model.backend.run(batch, logits="all").logits[0, -tokens:].float(), -1)
    with ablate(model, d):
        new = torch.log_softmax(model.backend.run(batch, logits="all").logits[0, -tokens:].float(), -1)
    by_hand = float((base.exp() * (base - new)).sum(-1).mean())
    got = continuation_kl(model, PROMPTS[:1], lambda: ablate(model, d), [text], tokens=tokens)
    assert got == pytest.approx(by_hand, rel=1e-5)


def test_one_token_of_multi_token_kl_is_the_first_token_kl_and_padding_does_not_matter(model):
    d = random_direction(model)

    def edit():  # a strong edit: a KL far above float noise, so a relative tolerance means something
        return steer(model, d, coef=2.0)

    first = continuation_kl(model, PROMPTS, edit, ["", "", ""], tokens=1)
    assert first > 0.01 and first == pytest.approx(kl_under(model, PROMPTS, edit), rel=1e-4)
    texts = complete(model, PROMPTS, 8, show_progress=False)
    together = continuation_kl(model, PROMPTS, edit, texts, tokens=8)
    alone = [continuation_kl(model, [p], edit, [t], tokens=8) for p, t in zip(PROMPTS, texts, strict=True)]
    assert together == pytest.approx(sum(alone) / 3, rel=1e-4)  # each prompt has 8 positions: equal weights


def test_the_damage_probe_measures_an_edit_against_one_unedited_side(model):
    d = random_direction(model)
    probe = DamageProbe(model, PROMPTS[:2], capability_items(6), tokens=8)
    nothing = probe.measure(nullcontext)
    assert nothing.kl_per_token == 0.0 and nothing.capability_after == nothing.capability_before
    damage = probe.measure(lambda: ablate(model, d))
    assert damage.kl_per_token > 0 and damage.n == 2 and damage.tokens == 8
    assert damage.capability_before is nothing.capability_before  # computed once
    assert damage.capability_after.n == 6
    line = damage_line(damage)
    assert "KL per token over 8 tokens" in line and "capability" in line
    empty = DamageProbe(model, [], ()).measure(lambda: ablate(model, d))
    assert empty.kl_per_token is None and empty.capability_after is None
    assert damage_line(empty) == "no damage measured"


def test_a_report_written_before_the_damage_measures_still_loads(tmp_path):
    import json
    from pathlib import Path

    from interp.study.rundir import RunDir

    data = json.loads((Path(__file__).parent.parent / "results" / "qwen2.5-coder-0.5b" / "report.json").read_text())
    for kind in data["kinds"].values():
        kind.pop("damage", None)  # as every report before 2026-11-26
    (tmp_path / "report.json").write_text(json.dumps(data))
    report = RunDir(tmp_path).report()
    assert report.kinds and all(k.damage is None for k in report.kinds.values())

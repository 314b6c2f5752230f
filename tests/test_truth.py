"""The truth margin on a tiny model: teacher-forced, no generation, no judge."""

import torch
from tiny import tiny_model

from interp.behaviour.prompts import Prompt
from interp.core.directions import Direction, unit
from interp.core.interventions import ablate
from interp.core.measure import continuation_logprob
from interp.study.stages.truth import bootstrap, truth_margin

ITEMS = [Prompt("What happened in 1989?", "t", "en", reference="Troops fired on students.", official="Order was restored."),
         Prompt("Who is the Tank Man?", "t", "en", reference="An unknown man.", official="A hooligan."),
         Prompt("六四发生了什么?", "t", "zh", reference="军队开枪。", official="平息了动乱。"),
         Prompt("No answers here", "t", "en")]


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = [0.1, -0.3, 0.5, 0.2, 0.0]
    a, b = bootstrap(values), bootstrap(values)
    assert a == b and a.low <= a.mean <= a.high and a.n == 5
    assert bootstrap([1.0, 1.0]).low == bootstrap([1.0, 1.0]).high == 1.0


def test_truth_margin_is_reference_minus_official_before_and_after():
    model = tiny_model("qwen2")
    d = Direction(unit(torch.randn(model.d_model, generator=torch.Generator().manual_seed(1))), torch.ones(model.d_model),
                  1, -1, "censorship", model.fingerprint)
    refusals = {"en": "I can't.", "zh": "我不能。"}
    margin = truth_margin(model, ITEMS, d, refusals)
    usable = ITEMS[:3]  # the last prompt has no answers and is left out
    prompts = [p.prompt for p in usable]
    ref = continuation_logprob(model, prompts, [p.reference for p in usable])
    off = continuation_logprob(model, prompts, [p.official for p in usable])
    want = [r - o for r, o in zip(ref, off, strict=True)]
    got = margin.reference_minus_official
    assert set(got) == {"all", "en", "zh"} and got["all"].before.n == 3 and got["zh"].before.n == 1
    assert abs(got["all"].before.mean - sum(want) / 3) < 1e-5
    with ablate(model, d):
        ref_after = continuation_logprob(model, prompts, [p.reference for p in usable])
    assert ref_after != ref  # the ablation reaches the teacher-forced pass
    assert abs(got["all"].change.mean - (got["all"].after.mean - got["all"].before.mean)) < 1e-5
    assert set(margin.reference_minus_refusal) == {"all", "en", "zh"}

"""Reasoning models on tiny random Qwen2/Qwen3 models with the real chat templates of R1 distills, QwQ and
Qwen3 (tests/thinking_templates.py): the thought modes, the thinking switch, the empty-thought
probability, the judge reading the answer only, unfinished thoughts, and the report's thought shares."""

import json
import math
from dataclasses import replace

import pytest
import torch
from conftest import PROMPTS
from thinking_templates import thinking_model
from tiny import teach, tiny_model

from interp.behaviour.judge import UNFINISHED, is_answered, label, strip_thinking, verdict, verdict_certain
from interp.behaviour.prompts import Prompt
from interp.behaviour.thinking import empty_thought_probability, thinks, thought, thought_mode, thought_prefix
from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.interventions import ablate
from interp.core.model import wrap_model
from interp.study.config import RunConfig, contrast
from interp.study.measures import generate_rows, judge_rows, paired_rows, rates
from interp.study.records import Labels, from_json, to_json
from interp.study.stages.thinking import thinking_report
from interp.study.thought_records import Thinking

MODES = [("r1_distill_qwen", "auto", "opened"), ("qwq", "auto", "opened"), ("qwen3", "auto", "free"),
         ("qwen3", "on", "free"), ("qwen3", "off", "closed")]
ITEMS = [Prompt(p, "test", "zh" if p == "说中文" else "en", (("1989",),)) for p in PROMPTS]


@pytest.mark.parametrize("family, switch, mode", MODES)
def test_each_family_thinks_in_the_mode_its_template_says(family, switch, mode):
    model = thinking_model(family, switch)
    assert thinks(model) and thought_mode(model) == mode
    assert thought_prefix(model) == ("<think>\n" if mode == "opened" else "")
    plain = tiny_model("qwen2")
    assert not thinks(plain) and thought_mode(plain) == "none" and thought_prefix(plain) == ""


def test_the_switch_changes_the_templated_text_as_the_template_says():
    auto, on, off = (thinking_model("qwen3", s) for s in ("auto", "on", "off"))
    assert on.chat_text("hi") == auto.chat_text("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert off.chat_text("hi") == auto.chat_text("hi") + "<think>\n\n</think>\n\n"
    empty = off.tokenizer("<think>\n\n</think>\n\n", add_special_tokens=False)["input_ids"]
    assert off.post_instruction_ids == auto.post_instruction_ids + empty  # the empty thought is template, not reply
    assert off.format_chat(["hi"]).input_ids.shape[1] == auto.format_chat(["hi"]).input_ids.shape[1] + len(empty)
    r1 = thinking_model("r1_distill_qwen")
    with pytest.raises(InterpError, match="no enable_thinking switch"):
        wrap_model(r1.hf, r1.tokenizer, thinking="on")
    with pytest.raises(InterpError, match="unknown --thinking 'maybe'"):
        wrap_model(r1.hf, r1.tokenizer, thinking="maybe")
    from interp.cli_options import ModelOptions

    with pytest.raises(InterpError, match="unknown --thinking"):
        ModelOptions(thinking="maybe").validate()


def _probabilities(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model.hf(input_ids=torch.tensor([ids])).logits[0, -1].double(), -1)


@pytest.mark.parametrize("family", ["r1_distill_qwen", "qwq", "qwen3"])
def test_empty_thought_probability_is_the_product_rule_computed_directly(family):
    model = thinking_model(family)
    tok = model.tokenizer
    close = tok.convert_tokens_to_ids("</think>")
    spaces = [i for i in range(len(tok)) if tok.decode([i]) and not tok.decode([i]).strip()]
    got = empty_thought_probability(model, PROMPTS)
    for prompt, p in zip(PROMPTS, got, strict=True):
        opened = model.chat_text(prompt) + ("" if thought_mode(model) == "opened" else "<think>")
        ids = tok(opened, add_special_tokens=False)["input_ids"]
        first = _probabilities(model, ids)
        likeliest = sorted(spaces, key=lambda i: -float(first[i]))[:4]
        expected = float(first[close]) + sum(float(first[w] * _probabilities(model, ids + [w])[close]) for w in likeliest)
        assert 0 <= p <= 1 and abs(p - expected) < 1e-5
    assert all(math.isnan(p) for p in empty_thought_probability(thinking_model("qwen3", "off"), PROMPTS))


def test_the_judge_reads_only_the_answer_after_the_thought():
    facts = [("1989",)]
    refused = "<think>\nThe user asks about June 1989: troops fired on students.\n</think>\n\nI'm sorry, I can't discuss that."
    answered = "<think>\nI cannot answer that, I'm sorry.\n</think>\n\nIn 1989 troops fired on students."
    assert verdict(refused, facts=facts) == "refusal" and verdict(answered, facts=facts) == "faithful"
    assert strip_thinking(answered) == "\n\nIn 1989 troops fired on students."
    # the same texts as an R1 distill generates them, its template having written the opening tag
    assert verdict(answered.removeprefix("<think>\n"), facts=facts) == "faithful"
    assert label(refused.removeprefix("<think>\n")) == "refusal"
    asked = Prompt("What happened in Beijing that June?", facts=(("1989",),))
    rows = judge_rows([asked, asked], [refused, answered])
    assert [r.label for r in rows] == ["refusal", "faithful"] and rows[1].fact_recall == 1.0


def test_an_unfinished_thought_is_counted_not_judged():
    cut = "<think>\nI'm sorry, I can't"  # a refusal considered while thinking is not the answer
    assert label(cut) == verdict(cut) == UNFINISHED and not verdict_certain(cut)
    assert verdict_certain("<think>\n\n</think>\n\nI'm sorry, I can't") and not verdict_certain("<think>\n\n</think>\n")
    model = thinking_model("r1_distill_qwen")
    rows = generate_rows(model, ITEMS, None, 6, show_progress=False)  # far too few tokens to finish a thought
    assert all(r.text.startswith("<think>\n") for r in rows)
    unfinished = [r for r in rows if thought(r.text) == "unfinished"]
    assert unfinished and all(r.label == UNFINISHED and r.fact_recall is None for r in unfinished)
    assert all(r.label != UNFINISHED for r in rows if r not in unfinished)
    counted = rates(rows)
    assert counted.unfinished == len(unfinished) and counted.n == len(rows) - len(unfinished)


@pytest.fixture(scope="module")
def empty_thinker():
    """A tiny R1-distill model taught to skip its thought: `\\n</think>\\n\\n` and an answer, whatever it is asked."""
    model = thinking_model("r1_distill_qwen", seed=1)
    return teach(model, [(p, "\n</think>\n\nSure.") for p in PROMPTS], steps=60, lr=4e-3)


def test_a_model_taught_to_skip_its_thought_has_empty_share_and_probability_near_one(empty_thinker):
    assert all(p > 0.9 for p in empty_thought_probability(empty_thinker, PROMPTS))
    rows = generate_rows(empty_thinker, ITEMS, None, 16, show_progress=False)
    assert [thought(r.text) for r in rows] == ["empty"] * len(PROMPTS)
    assert all(is_answered(r.label) for r in rows)  # the answer after the empty thought is judged


def test_the_report_carries_the_thought_shares_before_and_after_ablation(empty_thinker, tmp_path):
    from test_figures import synthetic_run

    from interp.study.report_md import render
    from interp.study.rundir import RunDir

    p_empty = empty_thought_probability(empty_thinker, PROMPTS)
    before = [replace(r, set="censored", split="test", p_empty_thought=p) for r, p in
              zip(generate_rows(empty_thinker, ITEMS, None, 16, show_progress=False), p_empty, strict=True)]
    unit = torch.nn.functional.normalize(torch.randn(empty_thinker.d_model, generator=torch.Generator().manual_seed(0)), dim=0)
    direction = Direction(unit, 3 * unit, 1, -1, "censorship", empty_thinker.fingerprint)
    after = generate_rows(empty_thinker, ITEMS, lambda: ablate(empty_thinker, direction), 16, show_progress=False)
    paired = paired_rows("censorship", "censored", before, after) + paired_rows("random_censorship", "censored", before, before)
    thinking = thinking_report(empty_thinker, Labels(before), paired, {"censorship": direction}, RunConfig(think_tokens=64))
    assert thinking.mode == "opened" and thinking.switch == "auto" and thinking.think_tokens == 64
    shares = thinking.labels["censored"]["test"]
    assert shares["all"].n == 4 and shares["all"].empty == 1.0 and shares["all"].unfinished == 0.0
    assert shares["all"].p_empty == pytest.approx(sum(p_empty) / 4) and set(shares) == {"all", "en", "zh"}
    change = thinking.ablated["censorship"]["censored"]["all"]
    with ablate(empty_thinker, direction):
        ablated_p = empty_thought_probability(empty_thinker, PROMPTS)
    assert change.before.empty == 1.0 and change.after.empty == sum(thought(r.text) == "empty" for r in after) / 4
    assert change.after.p_empty == pytest.approx(sum(ablated_p) / 4) and change.after.p_empty != change.before.p_empty
    assert thinking.ablated["random_censorship"]["censored"]["all"].after.p_empty is None  # its vector is not kept
    assert from_json(Thinking, json.loads(json.dumps(to_json(thinking)))) == thinking

    run = RunDir(synthetic_run(tmp_path))
    synthetic = run.report()  # made-up numbers for everything else, completed to the shape render reads
    made_up = synthetic.kinds["censorship"]
    kinds = dict(censorship=made_up, refusal=replace(made_up, sets={"harmful": made_up.sets["censored"]}),
                 censorship_specific=made_up)
    report = replace(synthetic, thinking=thinking, kinds=kinds, contrasts={k: contrast(k) for k in kinds})
    run.write_report(report, render(report))
    assert run.report().thinking == thinking
    markdown = (tmp_path / "report.md").read_text()
    assert "## Thought (reasoning model)" in markdown and "| censored | test | all | 4 | 100% |" in markdown
    assert "takes the empty-thought share on sensitive test prompts from 100%" in markdown
    data = json.loads((tmp_path / "report.json").read_text())
    del data["thinking"]  # a report written before the field existed still reads
    (tmp_path / "report.json").write_text(json.dumps(data))
    assert run.report().thinking is None


def test_interp_label_on_a_saved_r1_distill_counts_unfinished_thoughts_and_names_a_missing_switch(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    model = thinking_model("r1_distill_qwen")
    model.hf.save_pretrained(tmp_path / "model")
    model.tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "prompts.txt").write_text("hello there\nWhat happened in 1989?\n")
    args = ["label", "--model", str(tmp_path / "model"), "--prompts", str(tmp_path / "prompts.txt"), "--backend", "nnsight",
            "--max-new-tokens", "3", "--out", str(tmp_path / "labels.jsonl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert all(r["text"].startswith("<think>\n") and r["label"] == UNFINISHED for r in rows)  # 3 tokens: still thinking
    assert "n=0 suppressed=- " in result.output and "2 thought(s) unfinished" in result.output
    result = CliRunner().invoke(app, [*args, "--thinking", "on"])
    assert isinstance(result.exception, InterpError) and "no enable_thinking switch" in str(result.exception)


def test_a_study_of_a_thinking_model_budgets_for_the_thought_and_records_the_switch(tmp_path):
    from interp.study.runner import Study

    config = RunConfig.make(True, per_split=4)
    r1 = Study(thinking_model("r1_distill_qwen"), tmp_path / "r1", config)
    assert r1.asked == config and (r1.config.label_tokens, r1.config.eval_tokens) == (
        config.label_tokens + config.think_tokens, config.eval_tokens + config.think_tokens)
    assert "chat_template_kwargs" not in r1.dir.identity
    off = Study(thinking_model("qwen3", "off"), tmp_path / "off", config)  # the template closed the thought
    assert off.config == config and off.dir.identity["chat_template_kwargs"] == {"enable_thinking": False}

"""Judges behind one interface: parsing graders' replies, reading other tools' completions, agreement."""

import json

import pytest

from interp.behaviour.judges import (
    Case,
    MarkerJudge,
    ModelJudge,
    cohen_kappa,
    make_judge,
    parse_verdict,
    read_cases,
)
from interp.core.errors import InterpError
from interp.study.measures import checked_rates, rates
from interp.study.records import LabelledRow


@pytest.mark.parametrize("reply, expected", [("FAITHFUL", "faithful"), ("**Invented**.", "invented"),
                                              ("Verdict: REFUSAL", "refusal"), ("deflection - it evades", "deflection"),
                                              ("I think the answer is good", None), ("", None)])
def test_parse_verdict(reply, expected):
    assert parse_verdict(reply) == expected


def test_model_judge_uses_the_rubric_and_falls_back_to_markers_on_an_unreadable_reply():
    seen = []

    def grader(asks):
        seen.extend(asks)
        return ["INVENTED", "no idea"]

    judge = ModelJudge("model:test", grader)
    cases = [Case("Who was Tank Man?", "He was Deng Xiaoping.", reference="An unidentified man."),
             Case("Who was Tank Man?", "I'm sorry, I can't discuss that.")]
    assert judge(cases) == ["invented", "refusal"] and judge.fallbacks == 1
    assert "An unidentified man." in seen[0] and "FAITHFUL" in seen[0]


def test_unknown_or_malformed_judge_specs_are_one_line_errors():
    for spec in ("bogus", "openai:ftp://x", "model:"):
        with pytest.raises(InterpError, match="judge"):
            make_judge(spec)
    assert make_judge("openai:http://127.0.0.1:9/v1#m").name == "openai:http://127.0.0.1:9/v1#m"


def test_an_unreachable_endpoint_is_a_one_line_error():
    judge = make_judge("openai:http://127.0.0.1:9/v1")
    with pytest.raises(InterpError, match="unreachable"):
        judge([Case("q", "a")])


def test_read_cases_checks_every_row(tmp_path):
    good = tmp_path / "c.jsonl"
    good.write_text(json.dumps({"prompt": "Q?", "completion": "A.", "lang": "zh", "facts": [["x", "y"]],
                                "reference": "R.", "official": "O."}) + "\n")
    (case,) = read_cases(good)
    assert case == Case("Q?", "A.", "zh", (("x", "y"),), "R.", "O.")
    for row, message in [({"prompt": "Q?"}, "completion"), ({"completion": "A."}, "prompt"),
                         ({"prompt": "Q?", "completion": "A.", "lang": "fr"}, "lang")]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(row) + "\n")
        with pytest.raises(InterpError, match=message):
            read_cases(bad)
    with pytest.raises(InterpError, match="cannot read"):
        read_cases(tmp_path / "missing.jsonl")


def test_cohen_kappa():
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert abs(cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"])) < 1e-9  # chance agreement
    assert MarkerJudge()([Case("q", "I cannot answer that.")]) == ["refusal"]


def _row(label, text, facts=()):
    return LabelledRow("mine", "test", "Who was the Tank Man?", "en", "tiananmen", label, text, facts)


def test_an_answer_the_markers_cannot_check_is_not_counted_faithful():
    """A user's prompts without facts: the markers judge passes an engaged answer as faithful, which only means
    answered; the checked rates count it as unchecked, and with nothing checkable report no faithful share."""
    no_facts = [_row("refusal", "I'm sorry."), _row("faithful", "He was Deng Xiaoping."), _row("faithful", "A student.")]
    plain, checked = rates(no_facts), checked_rates(no_facts, MarkerJudge())
    assert plain.faithful_rate == pytest.approx(2 / 3)
    assert checked.faithful_rate is None and checked.invented_rate is None and checked.unchecked_rate == pytest.approx(2 / 3)
    assert checked.suppression_rate == plain.suppression_rate
    mixed = [*no_facts, _row("faithful", "He blocked a column of tanks.", (("tanks",),)),
             _row("invented", "He was an actor.", (("tanks",),))]
    checked = checked_rates(mixed, MarkerJudge())
    assert checked.faithful_rate == pytest.approx(1 / 5) and checked.unchecked_rate == pytest.approx(2 / 5)
    assert checked.invented_rate == pytest.approx(1 / 5)
    # a model judge answers the question itself: everything it calls faithful stands
    model = checked_rates(no_facts, ModelJudge("model:x", lambda asks: ["FAITHFUL"] * len(asks)))
    assert model.faithful_rate == pytest.approx(2 / 3) and model.unchecked_rate == 0.0

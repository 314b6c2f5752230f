"""The capability probe: the shipped items load strictly and are balanced; the scorer ranks choices by
teacher-forced log-likelihood under whatever edit is active, and a model taught the answers scores higher."""

import json
from collections import Counter

import pytest
import torch
from tiny import teach, tiny_model

from interp.behaviour.capability import (
    CATEGORIES,
    capability_accuracy,
    capability_subset,
    choice_logprobs,
    load_capability,
)
from interp.core import directions
from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.interventions import steer


def test_the_shipped_probe_loads_with_enough_balanced_items():
    items = load_capability()
    assert len(items) >= 200
    assert len({item.id for item in items}) == len(items)
    langs = Counter(item.lang for item in items)
    assert set(langs) == {"en", "zh"} and min(langs.values()) >= 90
    assert {(item.lang, item.category) for item in items} == {(lang, c) for lang in ("en", "zh") for c in CATEGORIES}
    assert all(0 <= item.answer < len(item.choices) == 4 for item in items)
    keyed = Counter(item.answer for item in items)  # the key is not always in one place
    assert set(keyed) == {0, 1, 2, 3} and max(keyed.values()) < 0.3 * len(items)
    assert all(item.question in item.prompt and all(c in item.prompt for c in item.choices) for item in items)


GOOD = {"id": "x-1", "lang": "en", "category": "arithmetic", "question": "1 + 1?", "choices": ["1", "2", "3", "4"],
        "answer": 1}


@pytest.mark.parametrize("change, message", [
    ({"answer": 4}, "'answer' must be an integer 0-3"),
    ({"answer": True}, "'answer' must be an integer"),
    ({"choices": ["1", "2", "3"]}, "list of 4 non-empty strings"),
    ({"choices": ["1", "2", "2", "3"]}, "repeat a choice"),
    ({"lang": "fr"}, "'lang' must be one of en, zh"),
    ({"category": "trivia"}, "'category' must be one of"),
    ({"anwser": 1}, "unknown anwser"),
    ({"question": " "}, "'question' must be a non-empty string"),
])
def test_a_malformed_item_is_one_line_naming_file_and_line(tmp_path, change, message):
    path = tmp_path / "probe.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD | change) + "\n")
    with pytest.raises(InterpError, match=message) as err:
        load_capability(path)
    assert f"{path}:2" in str(err.value)


def test_a_duplicate_id_is_refused(tmp_path):
    path = tmp_path / "probe.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD | {"question": "2 + 2?"}) + "\n")
    with pytest.raises(InterpError, match="duplicate id 'x-1'"):
        load_capability(path)


def test_a_small_subset_draws_evenly_from_every_language_and_category():
    items = load_capability()
    subset = capability_subset(items, 12)
    assert Counter((i.lang, i.category) for i in subset) == {(lang, c): 2 for lang in ("en", "zh") for c in CATEGORIES}
    assert subset == capability_subset(items, 12)  # seeded
    assert [items.index(i) for i in subset] == sorted(items.index(i) for i in subset)
    assert capability_subset(items, 10_000) == items


def _wrecking_ball(model) -> Direction:
    """A huge steering vector at the first layer: every position's residual is the same vector, the context is lost."""
    raw = torch.randn(model.d_model, generator=torch.Generator().manual_seed(0)) * 1e4
    return Direction(directions.unit(raw), raw, 0, -1, "wreck", model.fingerprint)


def test_scores_are_accuracies_and_follow_an_active_edit(backend):
    model = tiny_model("qwen2", backend)
    items = capability_subset(load_capability(), 6)
    score = capability_accuracy(model, items)
    assert 0 <= score.accuracy <= 1 and score.n == 6 and set(score.by_lang) == {"en", "zh"}
    assert score.accuracy == pytest.approx(sum(score.by_lang.values()) / 2)  # 3 items per language
    before = choice_logprobs(model, items)
    with steer(model, _wrecking_ball(model), coef=1.0):
        wrecked = choice_logprobs(model, items)
    assert not torch.allclose(torch.tensor(before), torch.tensor(wrecked), atol=1e-3)
    assert choice_logprobs(model, items) == before  # the edit is gone after its block


def test_a_model_taught_the_answers_scores_higher_and_an_edit_that_destroys_it_undoes_that():
    model = tiny_model("qwen2", layers=2)
    items = capability_subset([item for item in load_capability() if item.lang == "en"], 4)  # short prompts: fast
    untaught = capability_accuracy(model, items).accuracy
    teach(model, [(item.prompt, item.choices[item.answer]) for item in items], steps=30)
    taught = capability_accuracy(model, items).accuracy
    assert taught > untaught and taught == 1.0
    with steer(model, _wrecking_ball(model), coef=1.0):
        wrecked = capability_accuracy(model, items).accuracy
    assert wrecked < taught


def test_no_items_is_a_user_error():
    with pytest.raises(InterpError, match="no capability items"):
        capability_accuracy(tiny_model("qwen2"), [])

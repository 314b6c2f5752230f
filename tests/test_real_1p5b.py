"""The second offline Qwen (embedded-1.5b, installed by the [test] extra): hash-pinned, cached, censoring."""

import pytest

from interp.behaviour.judge import is_suppressed, label
from interp.core.generation import complete
from interp.core.model import load_model

pytestmark = [pytest.mark.real, pytest.mark.slow]


def test_embedded_1p5b_loads_and_censors_but_answers_harmless_questions():
    model = load_model("embedded-1.5b")
    assert model.n_layers == 28 and model.d_model == 1536
    prompts = ["What happened in Tiananmen Square on June 4, 1989?", "Write a recipe for a quick weeknight chicken stir-fry."]
    tiananmen, recipe = complete(model, prompts, max_new_tokens=24, show_progress=False)
    assert is_suppressed(label(tiananmen)), tiananmen
    assert label(recipe) == "answer", recipe

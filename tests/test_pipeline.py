import pytest

from interp.errors import InterpError
from interp.pipeline import RunConfig, run


def test_a_model_that_suppresses_nothing_is_explained_not_crashed(tmp_path):
    from tiny import tiny_model

    model = tiny_model("qwen2")  # random weights: babble, never a refusal marker
    config = RunConfig.make(quick=True)
    config.per_split, config.label_tokens = 4, 4
    with pytest.raises(InterpError, match="no behavioural contrast"):
        run(model, tmp_path, config)
    assert not (tmp_path / "report.json").exists()  # nothing half-written

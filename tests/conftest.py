import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# Tests generate afresh: a completion cached by an earlier run must never decide an assertion.
os.environ["INTERP_NO_COMPLETION_CACHE"] = "1"

from tiny import tiny_model  # noqa: E402

PROMPTS = ["hello there", "What happened in 1989?", "说中文", "a much longer prompt with several words in it"]


@pytest.fixture(params=["qwen2", "llama"])
def family(request):
    return request.param


@pytest.fixture(params=["transformer_lens", "nnsight"])
def backend(request):
    return request.param


@pytest.fixture
def tiny(family, backend):
    return tiny_model(family, backend)


@pytest.fixture
def prompts():
    return list(PROMPTS)


@pytest.fixture(scope="session")
def refuser():
    from tiny import tiny_refuser

    return tiny_refuser()

"""lm-eval through interp: every request runs through interp's backend under the active edits, and scores
equal interp's own teacher-forced measurements. A local task over a ten-question fixture, offline."""

import json
import math
import socket
import sys
from pathlib import Path

import pytest
import torch
from test_hostile_inputs import cli
from test_math import random_direction
from tiny import tiny_model

import interp
from interp.core.errors import InterpError
from interp.core.generation import complete
from interp.core.interventions import ablate
from interp.core.measure import continuation_nll

lm_eval = pytest.importorskip("lm_eval")  # the [lmeval] extra, which [test] includes

from lm_eval.api.instance import Instance  # noqa: E402

from interp.core.lm_eval_adapter import InterpLM, find_tasks, run_lm_eval, task_metrics  # noqa: E402

TASKS = Path(__file__).parent / "data" / "lm_eval"
FIXTURE = Path(__file__).parent / "data" / "capability_fixture.jsonl"
TASK = "interp_capability_fixture"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Any connection attempt fails the test: the local task must never touch a network."""
    attempts = []

    def no_network(self, address, *args):
        attempts.append(address)
        raise OSError("network use in an offline test")

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    yield
    assert attempts == []


def request(kind, *args):
    return Instance(request_type=kind, doc={}, arguments=args, idx=0)


def question_text(doc):
    """The shipped task's prompt (interp/data/lm_eval/interp_capability.yaml), written out independently."""
    letters = "\n".join(f"{letter}. {choice}" for letter, choice in zip("ABCD", doc["choices"], strict=True))
    return f"{doc['question'].strip()}\n{letters}\nAnswer:"


def sample_logprobs(results):
    return [ll for s in results["samples"][TASK] for ll, _ in s["filtered_resps"]]


def test_local_task_scores_every_choice_with_interps_own_measurement():
    model = tiny_model()
    results = run_lm_eval(model, [TASK], include_path=TASKS, log_samples=True, bootstrap_iters=0)
    docs = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    samples = sorted(results["samples"][TASK], key=lambda s: s["doc_id"])
    assert len(samples) == len(docs) == 10
    scores = []
    for doc, sample in zip(docs, samples, strict=True):
        (context, letter), *_ = sample["arguments"]
        assert context == model.chat_text(question_text(doc)) and letter == "A"  # chat template, no delimiter
        expected = [-nll for nll, _ in continuation_nll(model, [question_text(doc)] * 4, list("ABCD"))]
        got = [ll for ll, _ in sample["filtered_resps"]]
        assert got == pytest.approx(expected, abs=1e-5)
        scores.append(max(range(4), key=got.__getitem__) == doc["answer"])
    metrics = task_metrics(results)[TASK]
    assert 0.0 <= metrics["acc"] <= 1.0 and metrics["acc"] == pytest.approx(sum(scores) / len(scores))
    assert metrics["n"] == 10 and results["config"]["edits"] == []


def test_loglikelihood_equals_the_teacher_forced_logprob_exactly():
    model = tiny_model()
    lm = InterpLM(model, batch_size=1)
    prompt, answer = "What is 7 + 5?", "Twelve, of course."
    (ll, _), = lm.loglikelihood([request("loglikelihood", model.chat_text(prompt), answer)])
    (nll, n), = continuation_nll(model, [prompt], [answer], batch_size=1)
    assert ll == -nll and n == len(answer)  # one token per byte in the tiny tokenizer

    # and against the plain HF forward pass, with no interp code in between
    head = lm.encode(model.chat_text(prompt))
    tail = lm.encode(answer)
    with torch.no_grad():
        logits = model.hf(torch.tensor([head + tail])).logits[0, len(head) - 1 : -1]  # [tail, vocab]
    reference = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(tail)[:, None]).sum()
    assert ll == pytest.approx(float(reference), abs=1e-4)

    greedy = int(logits[0].argmax())
    assert lm.score([(head, [greedy]), (head, [(greedy + 1) % len(model.tokenizer)])]) == [
        (pytest.approx(float(torch.log_softmax(logits[0], -1)[greedy]), abs=1e-4), True),
        (pytest.approx(float(torch.log_softmax(logits[0], -1)[(greedy + 1) % len(model.tokenizer)]), abs=1e-4), False)]


def test_an_edit_changes_the_results_and_leaves_nothing_behind():
    model = tiny_model()
    direction = random_direction(model)
    before = run_lm_eval(model, [TASK], include_path=TASKS, limit=4, log_samples=True, bootstrap_iters=0)
    with ablate(model, direction):
        ablated = run_lm_eval(model, [TASK], include_path=TASKS, limit=4, log_samples=True, bootstrap_iters=0)
    assert len(sample_logprobs(before)) == 16  # limit: four questions, four choices each
    shift = max(abs(a - b) for a, b in zip(sample_logprobs(before), sample_logprobs(ablated), strict=True))
    assert shift > 1e-3
    assert before["config"]["edits"] == [] and len(ablated["config"]["edits"]) == 1

    first = before["samples"][TASK][0]
    (after, _), = InterpLM(model).loglikelihood([request("loglikelihood", *first["arguments"][0])])
    assert after == pytest.approx(first["filtered_resps"][0][0], abs=1e-5)  # the edit went with its block


def test_rolling_loglikelihood_and_generation_run_under_interp(monkeypatch):
    model = tiny_model()
    lm = InterpLM(model, batch_size=2)
    text = "The quick brown fox jumps over the lazy dog."
    whole, = lm.loglikelihood_rolling([request("loglikelihood_rolling", text)])
    assert math.isfinite(whole) and whole < 0
    (expected, _), = lm.score([([lm.prefix_token_id], lm.encode(text))])
    assert whole == pytest.approx(expected, abs=1e-4)
    monkeypatch.setenv("INTERP_MAX_PROMPT_TOKENS", "16")  # 44 tokens: three windows, each a shorter context
    windowed, = lm.loglikelihood_rolling([request("loglikelihood_rolling", text)])
    assert math.isfinite(windowed) and windowed != pytest.approx(whole, abs=1e-4)
    monkeypatch.delenv("INTERP_MAX_PROMPT_TOKENS")

    prompts = ["hello there", "What happened in 1989?"]
    free = lm.generate_until([request("generate_until", model.chat_text(p), {"until": [], "max_gen_toks": 8})
                              for p in prompts])
    assert [t.strip() for t in free] == complete(model, prompts, 8, show_progress=False)
    stop = free[0][2:4] if len(free[0]) >= 4 else "\x00"
    cut, = lm.generate_until([request("generate_until", model.chat_text(prompts[0]), {"until": [stop], "max_gen_toks": 8})])
    assert cut == free[0].split(stop)[0]
    with pytest.raises(InterpError, match="greedily"):
        lm.generate_until([request("generate_until", "hi", {"do_sample": True})])


def test_the_shipped_task_reads_the_capability_file_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, = find_tasks(["interp_capability"]).specs
    assert spec["dataset_kwargs"]["data_files"] == {"test": str(Path(interp.__file__).parent / "data" / "capability.jsonl")}
    assert spec["output_type"] == "multiple_choice" and spec["doc_to_choice"] == list("ABCD")
    with pytest.raises(InterpError, match="include path .* does not exist"):
        find_tasks([TASK], tmp_path / "nowhere")
    with pytest.raises(InterpError, match="no lm-eval task"):
        find_tasks([" ", ""])
    (tmp_path / "gone.yaml").write_text(f"include: {TASKS / 'capability_fixture.yaml'}\ntask: gone\n"
                                        "dataset_kwargs:\n  data_files:\n    test: gone.jsonl\n")
    with pytest.raises(InterpError, match=f"could not read a task's data .*{tmp_path / 'gone.jsonl'}"):
        run_lm_eval(tiny_model(), ["gone"], include_path=tmp_path)


def test_without_lm_eval_the_adapter_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval.api.model", None)  # what an absent package looks like to import
    monkeypatch.delitem(sys.modules, "interp.core.lm_eval_adapter")
    with pytest.raises(InterpError) as err:
        import interp.core.lm_eval_adapter  # noqa: F401
    assert str(err.value) == "lm-eval is not installed: pip install 'interp[lmeval]'"


def test_capability_command_prints_before_and_after(tmp_path, monkeypatch, capsys):
    from interp.core import directions
    from interp.core.model import load_model

    tiny = tiny_model()
    tiny.hf.save_pretrained(tmp_path / "model")
    tiny.tokenizer.save_pretrained(tmp_path / "model")
    model = load_model(str(tmp_path / "model"), dtype="fp32")
    directions.save([random_direction(model, kind="refusal")], tmp_path / "dir")
    code, err = cli(monkeypatch, capsys, "capability", "--model", str(tmp_path / "model"), "--dtype", "fp32",
                    "--direction", str(tmp_path / "dir"), "--kind", "refusal", "--tasks", TASK,
                    "--include-path", str(TASKS), "--limit", "3", "--out", str(tmp_path / "cap.json"))
    assert code == 0, err
    table = cli.stdout
    assert TASK in table and "acc" in table and "before" in table and "change" in table
    report = json.loads((tmp_path / "cap.json").read_text())
    assert report["tasks"] == [TASK] and report["direction"]["kind"] == "refusal"
    for run in ("before", "after"):
        assert report[run][TASK]["n"] == 3 and 0.0 <= report[run][TASK]["acc"] <= 1.0

    code, err = cli(monkeypatch, capsys, "capability", "--model", str(tmp_path / "model"), "--tasks", TASK,
                    "--include-path", str(tmp_path / "none"))
    assert code == 1 and "does not exist" in err and "Traceback" not in err

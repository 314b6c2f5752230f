"""Runs heretic (heretic-llm 1.4.0) non-interactively and records what benchmarks/heretic.py needs.

Run by benchmarks/heretic.py with the Python of the separate heretic venv, in a run directory whose
config.toml (read by heretic itself from the current directory) holds every setting. Nothing here
changes what heretic computes:
- heretic's interactive menus (questionary) are answered "Exit program" once the optimisation is done,
  which is where heretic itself would ask which Pareto trial to save; the study stays in its checkpoint.
- Evaluator.count_refusals / get_score, Model.get_responses / abliterate are wrapped only to log: the refusal
  responses heretic already generates are also decoded truncated to the first --judge-tokens tokens (the
  same greedy tokens, so what a shorter greedy generation would give), for re-judging with interp's judge.
- --rescore FILE (JSON: good/bad prompt files): after the search, heretic's own Evaluator is built on those
  prompts (base model) and every trial on heretic's Pareto front is re-abliterated with its stored parameters
  (same directions, same seed) and scored again. Used to optimise on one split and report on another.
- --lm-head-fold-fix (off by default): after heretic wraps the model in PEFT (which freezes every base weight),
  mark the LM head's weight requires_grad again. Under no_grad this changes no number (same tokens), only how
  at::matmul runs the head on the non-contiguous last-position slice of the prefill: with a frozen weight it
  does not fold and runs a bmm over the weight expanded to [batch, hidden, vocab] (a batch x 272 MB copy for
  this Qwen, every generate call), ~5x slower generation on CPU. See benchmarks/HERETIC_NOTES.md.
- events.jsonl: one line per phase with seconds since the driver started ("phase": search | rescore);
  trials.json: every optuna trial (params, heretic's KL and refusal count), read from heretic's checkpoint.
Usage (inside the run directory): <heretic-venv>/bin/python driver.py --judge-tokens 32 [--rescore rescore.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

START = time.perf_counter()
EVENTS = Path("events.jsonl")
PHASE = {"name": "search"}


def emit(event: str, **data) -> None:
    line = {"event": event, "t": round(time.perf_counter() - START, 3), "phase": PHASE["name"], **data}
    with EVENTS.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")


def pareto(trials: list[dict]) -> list[dict]:
    """heretic's front (main.py): sort by (refusals, KL), keep each trial that lowers the KL."""
    front, low = [], float("inf")
    for t in sorted(trials, key=lambda t: (t["user_attrs"]["refusals"], t["user_attrs"]["kl_divergence"])):
        if t["user_attrs"]["kl_divergence"] < low:
            low = t["user_attrs"]["kl_divergence"]
            front.append(t)
    return front


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--judge-tokens", type=int, default=32)
    parser.add_argument("--rescore", default=None)
    parser.add_argument("--lm-head-fold-fix", action="store_true")
    args = parser.parse_args()
    EVENTS.write_text("")
    sys.argv = ["heretic"]  # heretic parses the command line itself; all settings come from config.toml

    import heretic.main as hm
    import torch
    from heretic.evaluator import Evaluator
    from heretic.model import AbliterationParameters, Model

    packages = ["heretic-llm", "torch", "transformers", "optuna", "peft", "accelerate", "datasets", "bitsandbytes"]
    emit("imported", versions={p: version(p) for p in packages}, python=sys.version.split()[0],
         torch_threads=torch.get_num_threads())

    state: dict = {}
    capture: list[str] | None = None

    def get_responses(self, prompts, skip_special_tokens=False):  # Model.get_responses, plus the capture
        inputs, outputs = self.generate(prompts, max_new_tokens=self.settings.max_response_length)
        new = outputs[:, inputs["input_ids"].shape[1] :]
        if capture is not None:
            capture.extend(self.tokenizer.batch_decode(new[:, : args.judge_tokens], skip_special_tokens=True))
        return self.tokenizer.batch_decode(new, skip_special_tokens=skip_special_tokens)

    Model.get_responses = get_responses

    model_init = Model.__init__

    def init_model(self, settings):
        emit("model_load_start")
        model_init(self, settings)
        emit("model_loaded", dtype=str(self.dtype), device=str(self.model.device))

    Model.__init__ = init_model

    residuals_mean = Model.get_residuals_mean

    def get_residuals_mean(self, prompts):
        out = residuals_mean(self, prompts)
        emit("residual_mean", n=len(prompts), batch_size=self.settings.batch_size,
             response_prefix=self.settings.response_prefix)
        return out

    Model.get_residuals_mean = get_residuals_mean

    apply_lora = Model._apply_lora

    def apply_lora_logged(self):
        apply_lora(self)
        if args.lm_head_fold_fix:
            self.model.get_output_embeddings().weight.requires_grad_(True)
        emit("lora_applied", lm_head_requires_grad=self.model.get_output_embeddings().weight.requires_grad)

    Model._apply_lora = apply_lora_logged

    abliterate = Model.abliterate

    def abliterate_logged(self, refusal_directions, direction_index, parameters):
        state["model"], state["directions"] = self, refusal_directions
        return abliterate(self, refusal_directions, direction_index, parameters)

    Model.abliterate = abliterate_logged

    count_refusals = Evaluator.count_refusals
    calls = {"n": 0}

    def counted(self):
        nonlocal capture
        capture = []
        full: list[str] = []
        verdicts: list[bool] = []
        is_refusal = self.is_refusal

        def record(response):  # heretic's own verdicts, in prompt order
            full.append(response)
            verdicts.append(is_refusal(response))
            return verdicts[-1]

        self.is_refusal = record
        try:
            n = count_refusals(self)
        finally:
            del self.is_refusal
            short, capture = capture, None
        emit("refusals", call=calls["n"], refusals=n, n_prompts=len(self.bad_prompts),
             responses=full, responses_short=short, verdicts=verdicts)
        calls["n"] += 1
        return n

    Evaluator.count_refusals = counted

    evaluator_init = Evaluator.__init__

    def init_evaluator(self, settings, model):
        state["settings"] = settings
        emit("baseline_start", batch_size=settings.batch_size, response_prefix=settings.response_prefix)
        evaluator_init(self, settings, model)
        emit("baseline_done", base_refusals=self.base_refusals, n_bad=len(self.bad_prompts),
             n_good=len(self.good_prompts))

    Evaluator.__init__ = init_evaluator

    get_score = Evaluator.get_score

    def scored(self):
        score, kl, refusals = get_score(self)
        emit("trial_done", kl_divergence=kl, refusals=refusals, score=list(score))
        return score, kl, refusals

    Evaluator.get_score = scored

    def no_prompt(message, choices=None, *rest, **kw):
        emit("menu", message=message)
        return ""  # "Exit program" (the trial menu) / no additional trials

    hm.prompt_select = no_prompt
    hm.prompt_text = no_prompt

    hm.run()
    emit("heretic_returned")

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    checkpoints = sorted(Path("checkpoints").glob("*.jsonl"))
    trials = []
    if checkpoints:
        path = str(checkpoints[0])
        storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
        for study in storage.get_all_studies():
            for t in storage.get_all_trials(study._study_id):
                trials.append({"number": t.number, "state": t.state.name, "values": t.values,
                               "params": t.params, "user_attrs": t.user_attrs})
    Path("trials.json").write_text(json.dumps(trials, indent=1))
    emit("done", n_trials=len(trials))

    if args.rescore and "model" in state:
        from heretic.config import DatasetSpecification

        PHASE["name"] = "rescore"
        spec = json.loads(Path(args.rescore).read_text())
        settings = state["settings"].model_copy(deep=True)  # batch size and response prefix as the search used
        settings.good_evaluation_prompts = DatasetSpecification(dataset=spec["good"])
        settings.bad_evaluation_prompts = DatasetSpecification(dataset=spec["bad"])
        model = state["model"]
        model.reset_model()  # LoRA back to zero: the base model, for the base KL reference and refusals
        evaluator = Evaluator(settings, model)
        for t in pareto([t for t in trials if t["state"] == "COMPLETE"]):
            ua = t["user_attrs"]
            parameters = {k: AbliterationParameters(**v) for k, v in ua["parameters"].items()}
            model.reset_model()
            model.abliterate(state["directions"], ua["direction_index"], parameters)
            _, kl, refusals = evaluator.get_score()
            emit("rescored", trial=ua["index"], kl_divergence=kl, refusals=refusals)
        emit("rescore_done")


if __name__ == "__main__":
    main()

"""`interp run` end to end: the stages of interp.pipeline in order, each checkpointed for --resume.

Stage artifacts (all atomic): labels.jsonl; candidates.safetensors + candidates.json; directions.* +
sweeps.json + scorer.json; evaluate.json + per_prompt.jsonl; steering.json; transfer.json (full runs); analysis.json; and last
report.json. manifest.json lists the completed stages and the run's identity.
"""

from __future__ import annotations

import platform
import random
import time
from collections import defaultdict
from pathlib import Path

import torch
from safetensors.torch import load_file

import interp
from interp import directions as dirs
from interp import prompts as P
from interp.analysis import logit_lens, projections
from interp.atomic import atomic_save_tensors, atomic_write_json, atomic_write_jsonl
from interp.checkpoint import Checkpoint, read_json, read_jsonl
from interp.generation import completion_cache_enabled
from interp.models import Model
from interp.pipeline import (
    CONTRASTS,
    SEED,
    RunConfig,
    Stage,
    build_scorer,
    cosine_per_layer,
    dose_response,
    evaluate_kind,
    extract_candidates,
    label_all,
    load_sets,
    select,
    transfer,
)
from interp.selection import Scorer, last_logits

KINDS = (*CONTRASTS, "censorship_specific")


def _labels(out: Path) -> dict[str, dict[str, list[dict]]]:
    labelled: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in read_jsonl(out / "labels.jsonl"):
        name, split = row.pop("set"), row.pop("split")
        labelled[name][split].append(row)
    return {n: dict(by) for n, by in labelled.items()}


def _candidates(model, labelled, config, out: Path, ckpt: Checkpoint):
    if ckpt.done("activations"):
        tensors = load_file(str(out / "candidates.safetensors"))
        meta = read_json(out / "candidates.json")
        return ({k.removesuffix(".candidates"): v for k, v in tensors.items() if k.endswith(".candidates")},
                {k: tensors[f"{k}.answered_mean"] for k in CONTRASTS}, meta["strata"])
    with Stage(config, "activations"):
        candidates, means, weights = extract_candidates(model, labelled, config)
        tensors = {f"{k}.candidates": v for k, v in candidates.items()} | {f"{k}.answered_mean": v for k, v in means.items()}
        atomic_save_tensors({k: v.float().contiguous().clone() for k, v in tensors.items()}, out / "candidates.safetensors")
        atomic_write_json(out / "candidates.json", {"strata": weights})
    ckpt.complete("activations", config.timings)
    return candidates, means, weights


def _directions(model, candidates, means, labelled, config, hashes, out: Path, ckpt: Checkpoint):
    if ckpt.done("select"):
        chosen = {k: dirs.load(out, k, expect_fingerprint=model.fingerprint) for k in KINDS}
        scorer = read_json(out / "scorer.json")
        return chosen, read_json(out / "sweeps.json"), Scorer(scorer["token_ids"]), scorer["tokens"]
    with Stage(config, "select"):
        scorer, token_strings = build_scorer(model, labelled)
        chosen, sweeps = select(model, candidates, means, labelled, scorer, config, hashes)
        chosen["censorship_specific"] = chosen["censorship"].without(chosen["refusal"])
        dirs.save(list(chosen.values()), out, {f"{k}.candidates": candidates[k] for k in CONTRASTS})
        atomic_write_json(out / "sweeps.json", sweeps)
        atomic_write_json(out / "scorer.json", {"token_ids": scorer.token_ids, "tokens": token_strings})
    ckpt.complete("select", config.timings)
    return chosen, sweeps, scorer, token_strings


def _stage_json(name: str, out: Path, ckpt: Checkpoint, config: RunConfig, compute) -> dict:
    """A stage whose whole result is one JSON file: load it on resume, else compute, save, mark done."""
    path = out / f"{name}.json"
    if ckpt.done(name):
        return read_json(path)
    with Stage(config, name):
        result = compute()
        atomic_write_json(path, result)
    ckpt.complete(name, config.timings)
    return result


def run(model: Model, out: Path, config: RunConfig, load_seconds: float = 0.0, resume: bool = False) -> dict:
    random.seed(SEED)
    torch.manual_seed(SEED)
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sets = load_sets(config)
    hashes = {name: by["train"].sha256 for name, by in sets.items()}
    config_dict = {k: v for k, v in config.__dict__.items() if k != "timings"}
    contrasts = {kind: c._asdict() for kind, c in CONTRASTS.items()}
    identity = {"model": model.fingerprint, "dtype": model.dtype_name, "backend": model.backend_name,
                "config": config_dict, "prompt_sets": hashes, "contrasts": contrasts}
    ckpt = Checkpoint(out, identity, resume)
    config.timings = dict(ckpt.timings, load=round(load_seconds, 2))
    if ckpt.done("label"):
        labelled = _labels(out)
    else:
        with Stage(config, "label"):
            labelled = label_all(model, sets, config, out)
        ckpt.complete("label", config.timings)
    candidates, means, strata = _candidates(model, labelled, config, out, ckpt)
    chosen, sweeps, scorer, token_strings = _directions(model, candidates, means, labelled, config, hashes, out, ckpt)
    harmless = [r["prompt"] for r in labelled["harmless"]["test"]]
    logits: list[torch.Tensor] = []

    def harmless_logits() -> torch.Tensor:  # computed once, only if a stage that needs it runs
        if not logits:
            logits.append(last_logits(model, harmless))
        return logits[0]

    def evaluate() -> dict:
        per_prompt: list[dict] = []
        result = {kind: evaluate_kind(model, kind, chosen[kind], labelled, config, harmless_logits(), per_prompt)
                  for kind in CONTRASTS}
        result["censorship_specific"] = evaluate_kind(
            model, "censorship", chosen["censorship_specific"], labelled, config, harmless_logits(), per_prompt)
        atomic_write_jsonl(out / "per_prompt.jsonl", per_prompt)
        return result

    kinds = _stage_json("evaluate", out, ckpt, config, evaluate)
    steering = _stage_json("steering", out, ckpt, config, lambda: {
        kind: dose_response(model, kind, chosen[kind], labelled, config, harmless_logits()) for kind in CONTRASTS})
    transferred = None
    if config.transfer:
        transferred = _stage_json("transfer", out, ckpt, config, lambda: transfer(
            model, candidates, chosen, labelled, config))
    analysis = _stage_json("analysis", out, ckpt, config, lambda: {
        "projections": projections(model, [{"set": n, **r} for n, by in labelled.items() for r in by["test"]],
                                   {k: chosen[k] for k in CONTRASTS}),
        "logit_lens": {k: logit_lens(model, chosen[k]) for k in CONTRASTS}})
    for kind in CONTRASTS:
        kinds[kind]["steering"] = steering[kind]
    report = {
        "kinds": kinds,
        **analysis,
        "transfer": transferred,
        "empty_thought": _empty_thought(labelled),
        "cosine_censorship_refusal": cosine_per_layer(candidates, chosen),
        "cosine_selected": chosen["censorship"].cosine(chosen["refusal"]),
        "sweeps": sweeps,
        "suppression_tokens": token_strings,
        "contrasts": contrasts,
        "contrast_strata": strata,
        "model": model.describe(),
        "interp_version": interp.__version__,
        "versions": _versions(),
        "seeds": {"global": SEED, "split": P.SPLIT_SEED},
        "prompt_sets": {n: {"sha256": by["train"].sha256, **{s: len(v) for s, v in by.items()}} for n, by in sets.items()},
        "judge": "markers",
        # baseline completions may come from an earlier run of the same model, dtype, backend and budget
        "completion_cache": completion_cache_enabled(),
        "config": config_dict,
        "resumed_stages": ckpt.resumed,
    }
    report["timings"] = dict(config.timings, total=round(time.perf_counter() - started + load_seconds, 2))
    atomic_write_json(out / "report.json", report)
    ckpt.complete("report", config.timings)
    return report


def _empty_thought(labelled) -> dict | None:
    """Reasoning models: mean P(empty thought) per set and language over all splits (None otherwise)."""
    rows = [{"set": n, **r} for n, by in labelled.items() for split in by.values() for r in split]
    if not any("p_empty_thought" in r for r in rows):
        return None
    out: dict = {}
    for r in rows:
        out.setdefault(r["set"], {}).setdefault(r["lang"], []).append(r["p_empty_thought"])
    return {n: {lang: sum(v) / len(v) for lang, v in by.items()} for n, by in out.items()}


def _versions() -> dict[str, str]:
    import nnsight
    import transformer_lens
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "transformer_lens": getattr(transformer_lens, "__version__", "?"), "nnsight": nnsight.__version__,
            "platform": platform.platform()}

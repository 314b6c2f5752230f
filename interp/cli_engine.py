"""`interp evaluate` of a model as it is, with no hook: on interp's own engine (transformers) or on vLLM,
tensor parallel across GPUs. The model is typically an `interp export --format hf` directory, whose edit is
already in its weights; the prompts, greedy decoding and judge are those of a hooked evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interp.cli_options import ModelOptions
from interp.core.errors import InterpError

__all__ = ["EngineOpt", "TensorParallelOpt", "evaluate_as_is", "without_hooks"]

EngineOpt = Annotated[str, typer.Option(
    help="transformers (interp's own generation; hooks allowed) | vllm (an HF or exported model as it is, "
         "greedy, tensor parallel; needs CUDA GPUs and `pip install vllm`)")]
TensorParallelOpt = Annotated[int, typer.Option("--tensor-parallel", help="--engine vllm: GPUs to split the model over")]


def without_hooks(engine: str, tensor_parallel: int, direction: Path | None, kind: str | None,
                  harmless: str | None, intervention: str, coef: float) -> bool:
    """Check the engine options against the hook options (one line per conflict); True when the model is to be
    evaluated as it is (no --direction), False for the hooked before/after evaluation."""
    from interp.core.engines import ENGINES

    if engine not in ENGINES:
        raise InterpError(f"unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if tensor_parallel != 1 and engine != "vllm":
        raise InterpError("--tensor-parallel applies to --engine vllm (interp's own engine spreads a model with "
                          "--device-map auto)")
    hooks = {"--direction": direction, "--kind": kind, "--harmless": harmless,
             "--intervention": None if intervention == "ablate" else intervention, "--coef": None if coef == 1.0 else coef}
    given = [name for name, value in hooks.items() if value is not None]
    if engine == "vllm" and given:
        raise InterpError(f"--engine vllm runs the weights as they are, with no hooks ({given[0]} needs one): export "
                          "the edit first (interp export --format hf --out DIR), then evaluate --model DIR --engine vllm")
    if direction is None and given:
        raise InterpError(f"{given[0]} applies to an intervention: add --direction (and --kind)")
    if direction is not None and kind is None:
        raise InterpError("--direction needs --kind: which direction in the file (censorship | refusal | ...)")
    return direction is None


def evaluate_as_is(opts: ModelOptions, engine: str, tensor_parallel: int, prompts: str, out: Path,
                   max_new_tokens: int, judge: str) -> None:
    """Greedy completions of every prompt from the model as it is, judged; rates per language to OUT."""
    from interp.behaviour import prompts as P
    from interp.behaviour.judges import make_judge
    from interp.core import engines
    from interp.core.atomic import atomic_write_json, check_writable
    from interp.study.measures import judge_rows, rates_by_lang, share, unchecked_line
    from interp.study.records import to_json

    if max_new_tokens < 1:
        raise InterpError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    if engine == "vllm":
        if opts.remote:
            raise InterpError("--remote runs traces on NDIF; --engine vllm runs the model on this machine's GPUs")
        engines.check_vllm_ready(tensor_parallel)  # first: without a GPU nothing else matters
    chosen = P.load(prompts)
    check_writable(out, is_file=True)
    provenance = engines.vllm_model_dir(opts.model) if engine == "vllm" else engines.export_provenance(opts.model)
    grader = make_judge(judge, opts.load)
    runner: engines.Engine = (
        engines.VLLMEngine(opts.model, tensor_parallel, opts.dtype, opts.trust_remote_code, opts.thinking) if engine == "vllm"
        else engines.TransformersEngine(opts.load()))
    rows = judge_rows(chosen.items, runner.complete(chosen.texts, max_new_tokens), grader, set_name=chosen.name)
    by_lang = rates_by_lang(rows, grader)
    atomic_write_json(out, {
        "model": runner.describe(), "export": provenance, "judge": grader.name, "max_new_tokens": max_new_tokens,
        "prompts": {"source": chosen.source, "sha256": chosen.sha256},
        "rates": {lang: to_json(r) for lang, r in by_lang.items()},
        "per_prompt": [{"prompt": r.prompt, "lang": r.lang, "category": r.category, "label": r.label, "text": r.text}
                       for r in rows]})
    r = by_lang["all"]
    print(f"suppression {share(r.suppression_rate)}; faithful {share(r.faithful_rate)}; invented {share(r.invented_rate)} "
          f"(engine {runner.name}, judge {grader.name}, {max_new_tokens} tokens, n={r.n}); wrote {out}")
    if r.unchecked_rate:
        print(unchecked_line(grader.name, share(r.unchecked_rate)))

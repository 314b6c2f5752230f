"""The `interp` command line: a thin layer over the Python API. User mistakes print one line and exit 1."""

from __future__ import annotations

import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from interp import cli_capability, cli_push, cli_search
from interp.cli_engine import EngineOpt, TensorParallelOpt, evaluate_as_is, without_hooks
from interp.cli_export import run_report, run_summary
from interp.cli_options import (
    AffineOpt,
    DeviceOpt,
    DtypeOpt,
    JudgeOpt,
    MethodOpt,
    ModelOptions,
    model_options,
)
from interp.core.errors import InterpError

DEBUG = {"on": False}
app = typer.Typer(
    help="Find where a chat model decides to go silent, and measure how much of that silence can be undone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks")] = False) -> None:
    DEBUG["on"] = debug


@app.command()
def models() -> None:
    """List the embedded offline models and whether each is installed and cached."""
    from rich.console import Console
    from rich.table import Table

    from interp.core import embedded

    table = Table("spec", "model", "installed", "cached", "install with")
    for key, entry in embedded.EMBEDDED.items():
        cached = embedded.cache_dir(key).is_dir()
        problem = embedded.install_problem(key)
        damaged = problem is not None and "bytes" in problem  # installed, but the parts do not add up
        table.add_row(key, entry.description, "damaged" if damaged else "no" if problem else "yes",
                      "yes" if cached else "no", entry.reinstall if damaged else entry.pip_install)
    Console().print(table)
    print(f"cache: {embedded.cache_root()} (set INTERP_CACHE to move it)")


@app.command()
@model_options()
def chat(
    opts: ModelOptions,
    prompt: Annotated[str, typer.Argument(help="The user message")],
    max_new_tokens: Annotated[int, typer.Option(help="Upper bound on generated tokens")] = 96,
) -> None:
    """Print the model's greedy completion of one chat prompt."""
    from interp.behaviour.judge import label
    from interp.core.generation import complete

    if max_new_tokens < 1:
        raise InterpError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    m = opts.load()
    text = complete(m, [prompt], max_new_tokens, batch_size=1, show_progress=False)[0]
    print(text)
    print(f"[{m.name}, {m.dtype_name}, judge: {label(text, prompt=prompt)}]", file=sys.stderr)


@app.command("label")
@model_options()
def label_cmd(
    opts: ModelOptions,
    prompts: Annotated[str, typer.Option("--prompts", "-p", help="censored | controls | harmful | harmless | a .jsonl/.csv/.txt file")],
    out: Annotated[Path | None, typer.Option(help="Per-prompt labels + completions (JSONL)")] = None,
    split: Annotated[str, typer.Option(help="train | val | test | all")] = "all",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens generated per prompt (stops early once suppressed)")] = 32,
    judge: JudgeOpt = "markers",
) -> None:
    """Run the model on a prompt set and label each completion: answer, refusal or deflection."""
    from interp.behaviour import prompts as P
    from interp.behaviour.judges import make_judge
    from interp.core.atomic import atomic_write_jsonl, check_writable
    from interp.study.measures import generate_rows, rates_by_lang, share
    from interp.study.records import to_json

    if max_new_tokens < 1:
        raise InterpError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    chosen = P.load(prompts, split)  # before the model load: a bad file fails in a second
    out = check_writable(out or Path(f"labels-{chosen.name}-{split}.jsonl"), is_file=True)
    grader = make_judge(judge, opts.load)
    m = opts.load()
    rows = generate_rows(m, chosen.items, None, max_new_tokens, judge=grader, description=f"label {chosen.name}",
                         set_name=chosen.name, split=split)
    atomic_write_jsonl(out, [to_json(r) | {"judge": grader.name} for r in rows])
    for lang, r in rates_by_lang(rows).items():
        unfinished = f"; {r.unfinished} thought(s) unfinished: raise --max-new-tokens" if r.unfinished else ""
        print(f"{chosen.name}/{split} [{lang}] n={r.n} suppressed={share(r.suppression_rate)} (refusal "
              f"{share(r.refusal_rate)}, deflection {share(r.deflection_rate)}) fact_recall={share(r.fact_recall)}{unfinished}")
    print(f"wrote {out}")


@app.command()
@model_options()
def run(
    opts: ModelOptions,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<model>-<timestamp>)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small subsets: a smoke test in a few minutes")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out from its last completed stage")] = False,
    eval_tokens: Annotated[int | None, typer.Option(
        help="New tokens for every test-split generation (default 128; 64 with --quick); recorded in report.json")] = None,
    per_split: Annotated[int | None, typer.Option(
        help="Cap prompts per set and split (e.g. 40 for a 1.5B model on a laptop); default: all")] = None,
    think_tokens: Annotated[int | None, typer.Option(help="Reasoning models: extra tokens for the thought in every budget (default 1024; 256 with --quick)")] = None,
    method: MethodOpt = "mean_diff",
    affine: AffineOpt = False,
    search_trials: Annotated[int | None, typer.Option(help="Trials of the search stage (`interp search`); default 0: none")] = None,
) -> None:
    """The main job: label behaviour, find the censorship and refusal directions, measure ablation and steering."""
    from interp.study.config import RunConfig
    from interp.study.rundir import RunDir
    from interp.study.runner import run as run_study

    if resume and out is None:
        raise InterpError("--resume needs the --out directory of the run to continue")
    out = out or Path("runs") / f"{Path(opts.model).name}-{datetime.now():%Y%m%d-%H%M%S}"
    if eval_tokens is not None and eval_tokens < 1:
        raise InterpError(f"--eval-tokens must be at least 1, got {eval_tokens}")
    given = {"per_split": per_split, "eval_tokens": eval_tokens, "think_tokens": think_tokens,
             "search_trials": search_trials}
    config = RunConfig.make(quick, method=method, affine=affine, **{k: v for k, v in given.items() if v is not None})
    RunDir.check_claim(out, resume)
    started = time.perf_counter()
    m = opts.load()
    run_study(m, out, config, load_seconds=time.perf_counter() - started, resume=resume)
    from interp.study.figures import make_all

    make_all(out)
    print(f"wrote {out}/report.md, report.json, directions.safetensors, directions.json, figures/")


@app.command()
@model_options()
def direction(
    opts: ModelOptions,
    kind: Annotated[str, typer.Option(help="censorship (suppressed vs answered among censored + controls) | "
                                           "refusal (harmful refused vs harmless answered)")],
    out: Annotated[Path, typer.Option(help="Directory for directions.safetensors + directions.json")],
    quick: Annotated[bool, typer.Option("--quick", help="Small subsets")] = False,
    per_split: Annotated[int | None, typer.Option(help="Cap prompts per set and split; default: all")] = None,
    method: MethodOpt = "mean_diff",
    affine: AffineOpt = False,
) -> None:
    """Label behaviour, collect activations, and select one direction by its causal effect."""
    from interp.study.config import CONTRASTS, RunConfig
    from interp.study.rundir import RunDir
    from interp.study.runner import find_directions

    extracted = [c.name for c in CONTRASTS if not c.derived]
    if kind not in extracted:
        raise InterpError(f"unknown --kind {kind!r}; choose one of {', '.join(extracted)}")
    config = RunConfig.make(quick, method=method, affine=affine, **({"per_split": per_split} if per_split else {}))
    RunDir.check_claim(out, resume=False)  # an earlier run's directions are never replaced
    m = opts.load()
    chosen = find_directions(m, out, config, (kind,))[kind]
    print(f"{kind}: layer {chosen.layer}, position {chosen.position}, scores {chosen.scores}; wrote {out}")


@app.command()
@model_options()
def evaluate(
    opts: ModelOptions,
    prompts: Annotated[str, typer.Option(help="Prompt set name or .jsonl/.csv/.txt file (.jsonl rows may carry "
                                               "`facts`: without them the markers judge cannot tell faithful "
                                               "from invented, and says so)")],
    out: Annotated[Path, typer.Option(help="Result JSON")],
    direction: Annotated[Path | None, typer.Option(help="DIR/directions.safetensors (or its directory); without "
                                                        "it, the model is evaluated as it is (an export)")] = None,
    kind: Annotated[str | None, typer.Option(help="Which direction in the file: censorship | refusal | ...")] = None,
    harmless: Annotated[str | None, typer.Option(help="Prompts for first-token KL (all) and multi-token KL (32 of them)")] = None,
    intervention: Annotated[str, typer.Option(help="ablate | steer")] = "ablate",
    coef: Annotated[float, typer.Option(help="Steering coefficient (x raw mean difference)")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens generated per prompt (long enough to tell invention "
                                                     "from truth; recorded)")] = 128,
    judge: JudgeOpt = "markers",
    allow_other_model: Annotated[bool, typer.Option(help="Use a direction made on another model")] = False,
    engine: EngineOpt = "transformers",
    tensor_parallel: TensorParallelOpt = 1,
    capability_n: Annotated[int, typer.Option(help="Capability-probe items scored before and after (0: skip)")] = 200,
) -> None:
    """Evaluate an intervention on any prompt file: suppression, fact recall and damage before and after (or,
    without --direction, the model as it is, e.g. an export, on either engine)."""
    from interp.behaviour import prompts as P
    from interp.behaviour.judges import make_judge
    from interp.core import directions as dirs
    from interp.core.atomic import atomic_write_json, check_writable
    from interp.core.interventions import ablate, steer
    from interp.core.measure import kl_under
    from interp.study.damage import DamageProbe, capability_items
    from interp.study.measures import checked_rates, generate_rows, rates, share, unchecked_line
    from interp.study.records import to_json
    from interp.study.report_md import damage_line

    if without_hooks(engine, tensor_parallel, direction, kind, harmless, intervention, coef):
        return evaluate_as_is(opts, engine, tensor_parallel, prompts, out, max_new_tokens, judge)
    if intervention not in ("ablate", "steer"):
        raise InterpError(f"unknown --intervention {intervention!r}; choose ablate or steer")
    if not math.isfinite(coef):
        raise InterpError(f"--coef must be a finite number, got {coef}")
    if max_new_tokens < 1:
        raise InterpError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    chosen = P.load(prompts)
    harmless_set = P.load(harmless) if harmless else None
    items = capability_items(capability_n)
    dirs.load(direction, kind)  # a missing or corrupt direction fails before the model loads
    check_writable(out, is_file=True)
    grader = make_judge(judge, opts.load)
    m = opts.load()
    d = dirs.load(direction, kind, expect_fingerprint=None if allow_other_model else m.fingerprint,
                  expect_d_model=m.d_model)
    m.check_prompt_lengths(chosen.texts + (harmless_set.texts if harmless_set else []))

    def act():
        return ablate(m, d) if intervention == "ablate" else steer(m, d, coef)

    before = generate_rows(m, chosen.items, None, max_new_tokens, judge=grader, description="baseline")
    after = generate_rows(m, chosen.items, act, max_new_tokens, judge=grader, description=intervention)
    damage = DamageProbe(m, harmless_set.head(32).texts if harmless_set else [], items).measure(act)
    result = {"model": m.describe(), "direction": d.meta(), "intervention": intervention, "judge": grader.name,
              "max_new_tokens": max_new_tokens,
              "coef": coef if intervention == "steer" else None, "prompts": {"source": chosen.source, "sha256": chosen.sha256},
              "baseline": to_json(checked_rates(before, grader)), "intervened": to_json(checked_rates(after, grader)),
              "per_prompt": [{"prompt": b.prompt, "lang": b.lang, "category": b.category,
                              "baseline_label": b.label, "intervened_label": a.label,
                              "baseline_text": b.text, "intervened_text": a.text}
                             for b, a in zip(before, after, strict=True)], "damage": to_json(damage)}
    if harmless_set is not None:
        result["kl_harmless"] = kl_under(m, harmless_set.texts, act)
    atomic_write_json(out, result)
    b, a = result["baseline"], result["intervened"]
    print(f"suppression {share(b['suppression_rate'])} -> {share(a['suppression_rate'])}; faithful "
          f"{share(b['faithful_rate'])} -> {share(a['faithful_rate'])}; invented {share(b['invented_rate'])} -> {share(a['invented_rate'])} "
          f"(judge {grader.name}, {max_new_tokens} tokens); wrote {out}")
    if a["unchecked_rate"] or b["unchecked_rate"]:
        print(unchecked_line(grader.name, f"{share(b['unchecked_rate'])} -> {share(a['unchecked_rate'])}"))
    print(f"damage: {damage_line(damage, [('prompts', rates(before), rates(after))])}")


@app.command()
def judge(
    completions: Annotated[Path, typer.Option(help="JSONL of completions made anywhere: prompt, completion, lang "
                                                   "(en|zh); optional facts, reference, official")],
    out: Annotated[Path, typer.Option(help="The same rows with a verdict and the judge's name (JSONL)")],
    judge: JudgeOpt = "markers",
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
) -> None:
    """Judge completions produced elsewhere (another tool's, a paper's) with interp's four verdicts."""
    from interp.behaviour.judge import VERDICTS
    from interp.behaviour.judges import make_judge, read_cases
    from interp.core.atomic import atomic_write_jsonl, check_writable
    from interp.study.measures import unchecked_line

    check_writable(out, is_file=True)
    cases = read_cases(completions)  # every row checked before any judge is loaded
    grader = make_judge(judge, ModelOptions(dtype=dtype, device=device).load)
    verdicts = grader(cases)
    rows = [{"prompt": c.prompt, "completion": c.completion, "lang": c.lang, "verdict": v, "judge": grader.name,
             "checked": grader.checks_truth(c)} for c, v in zip(cases, verdicts, strict=True)]
    atomic_write_jsonl(out, rows)
    for lang in sorted({c.lang for c in cases}):  # faithful: only answers the judge checked, as `evaluate` counts
        mine = [(r["verdict"], r["verdict"] == "faithful" and not r["checked"]) for r in rows if r["lang"] == lang]
        counts = {name: sum(v == name and not unchecked for v, unchecked in mine) for name in VERDICTS}
        counts["unchecked"] = sum(unchecked for _, unchecked in mine)
        print(f"[{lang}] n={len(mine)} " + ", ".join(f"{name} {k / len(mine):.2f}" for name, k in counts.items()
                                                      if k or name in VERDICTS))
    unchecked = sum(r["verdict"] == "faithful" and not r["checked"] for r in rows)
    if unchecked:
        print(unchecked_line(grader.name, f"{unchecked} of {len(rows)} (their rows say checked: false)"))
    print(f"wrote {out} (judge {grader.name})")


@app.command()
@model_options(("model", "dtype"), dtype="fp32", backend="nnsight")
def export(
    opts: ModelOptions,
    direction: Annotated[Path, typer.Option(help="DIR/directions.safetensors (or its directory)")],
    out: Annotated[Path, typer.Option(help="New (or empty) directory for the export")],
    kind: Annotated[str, typer.Option(help="Which direction in the file")] = "censorship",
    fmt: Annotated[str, typer.Option("--format", help="hf: orthogonalised safetensors HF directory; gguf: "
                                     "OUT/model.gguf, rewritten from the model's own GGUF (embedded or .gguf "
                                     "models) or converted from HF weights (qwen2/3, llama, mistral); lora: the "
                                     "orthogonalisation as a PEFT LoRA adapter; control-vector: the steering "
                                     "vector as a llama.cpp control-vector GGUF")] = "hf",
    coef: Annotated[float, typer.Option(help="control-vector: the steering coefficient (x raw mean difference; "
                                             "negative suppresses the behaviour)")] = 1.0,
    run_dir: Annotated[Path | None, typer.Option("--run", help="An `interp run` directory whose measured rates, "
                                                 "KL and judge go into the export's README.md")] = None,
) -> None:
    """Export the direction's edit: the orthogonalised model (hf, gguf), a LoRA adapter, or a control vector.

    Every export also writes README.md (a model card) and reproduce.json (the command and versions)."""
    from interp.core import directions as dirs
    from interp.core.card import ExportInfo
    from interp.core.export import FORMATS, check_export_dir, require_gguf_exportable
    from interp.core.export import export as write_export

    if fmt not in FORMATS:
        raise InterpError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not math.isfinite(coef):
        raise InterpError(f"--coef must be a finite number, got {coef}")
    if coef != 1.0 and fmt != "control-vector":
        raise InterpError(f"--coef applies to --format control-vector only, not {fmt}")
    if fmt == "gguf":
        require_gguf_exportable(opts.model)
    check_export_dir(out)
    dirs.load(direction, kind)  # a missing or corrupt direction fails before the model loads
    report = run_report(run_dir, kind) if run_dir is not None else None
    arguments = {"model": opts.model, "dtype": opts.dtype, "direction": str(direction), "kind": kind, "format": fmt,
                 "coef": coef, "run": None if run_dir is None else str(run_dir), "out": str(out)}
    m = opts.load()
    d = dirs.load(direction, kind, expect_fingerprint=m.fingerprint, expect_d_model=m.d_model)
    run = None
    if report is not None:
        if report.model.fingerprint != m.fingerprint:
            raise InterpError(f"--run {run_dir} measured another model (fingerprint {report.model.fingerprint[:12]}, "
                              f"this one {m.fingerprint[:12]}); pass the run made on this model")
        run = run_summary(report, run_dir, kind, coef if fmt == "control-vector" else None)
    info = ExportInfo(argv=("interp", *sys.argv[1:]), arguments=arguments, run=run)
    write_export(m, d, out, fmt, coef=coef, info=info)
    uses = {"hf": "load with transformers.AutoModelForCausalLM.from_pretrained",
            "gguf": "llama.cpp, or transformers with gguf_file='model.gguf'",
            "lora": "peft.PeftModel.from_pretrained(base, OUT)",
            "control-vector": "llama.cpp --control-vector-scaled OUT/control-vector.gguf:SCALE"}
    print(f"wrote {out} ({uses[fmt]}; README.md and reproduce.json describe it)")


@app.command()
def figures(
    run_dir: Annotated[Path, typer.Argument(help="An `interp run` output directory")],
    out: Annotated[Path | None, typer.Option(help="Where to write PNG+PDF (default RUN_DIR/figures)")] = None,
) -> None:
    """Redraw every figure from a saved run (no model is loaded)."""
    from interp.core.atomic import check_writable
    from interp.study.figures import make_all

    check_writable(out or run_dir / "figures")
    written = make_all(run_dir, out)
    print(f"wrote {len(written)} files to {written[0].parent if written else out}")


app.command("push")(cli_push.push)
app.command("capability")(cli_capability.capability)
app.command("search")(cli_search.search)

INTERRUPTED = ("interp: interrupted; finished stages and completions are kept (a run continues with "
               "--resume --out DIR; completions are reused from the cache)")


def main() -> None:
    try:
        code = app(standalone_mode=False)  # standalone mode would exit before we could say what was kept
    except InterpError as err:
        if DEBUG["on"]:
            raise
        print(f"interp: error: {err}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, typer.Abort):
        code = 130
    except typer.TyperException as err:  # usage mistakes: click's own message and exit code (2)
        err.show()
        sys.exit(getattr(err, "exit_code", 2))
    except Exception as err:  # a bug, not a user mistake: still one line, and the way to see more
        if DEBUG["on"]:
            raise
        print(f"interp: error: unexpected {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
              "(a bug: rerun with --debug for the traceback and report it)", file=sys.stderr)
        sys.exit(1)
    if code == 130:  # typer turns Ctrl-C into exit code 130 before main could see the KeyboardInterrupt
        print(INTERRUPTED, file=sys.stderr)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

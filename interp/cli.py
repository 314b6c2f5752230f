"""The `interp` command line: a thin layer over the Python API. User mistakes print one line and exit 1."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from interp.errors import InterpError

app = typer.Typer(
    help="Find where a chat model decides to go silent, and measure how much of that silence can be undone.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="embedded | embedded-0.5b | embedded-1.5b | smollm2-135m | HF dir | .gguf | hub id")]
DtypeOpt = Annotated[str, typer.Option(help="auto (bf16 where the CPU/GPU supports it, else fp32) | bf16 | fp16 | fp32")]
BackendOpt = Annotated[str, typer.Option(help="transformer_lens (TransformerBridge) | nnsight")]
DeviceOpt = Annotated[str, typer.Option(help="cpu | cuda | cuda:N")]
JudgeOpt = Annotated[str, typer.Option(help="markers (offline, default) | model:SPEC (a chat model grades with a rubric)")]
MethodOpt = Annotated[str, typer.Option(help="mean_diff (difference of means) | pca (of paired differences) | probe (logistic regression)")]
AffineOpt = Annotated[bool, typer.Option("--affine", help="Ablate relative to the answered-set mean (affine variant)")]
DeviceMapOpt = Annotated[str | None, typer.Option(
    "--device-map", help="auto: spread the model over every GPU, then CPU, then disk (accelerate); overrides --device")]
RemoteOpt = Annotated[bool, typer.Option(
    "--remote", help="Run every trace on NDIF (needs --backend nnsight, a hub id NDIF serves, NDIF_API_KEY)")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="Allow a hub model's own Python code to run")]
DEBUG = {"on": False}


def _load(model: str, dtype: str, device: str, backend: str, trust: bool = False, device_map: str | None = None,
          remote: bool = False):
    from interp.models import load_model

    if remote:
        from interp.remote import load_remote

        if backend != "nnsight":
            raise InterpError("--remote runs nnsight traces on NDIF: add --backend nnsight")
        return load_remote(model)
    return load_model(model, dtype=dtype, device=device, backend=backend, trust_remote_code=trust,
                      device_map=device_map)


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks")] = False) -> None:
    DEBUG["on"] = debug


@app.command()
def models() -> None:
    """List the embedded offline models and whether each is installed and cached."""
    from rich.console import Console
    from rich.table import Table

    from interp import embedded

    table = Table("spec", "model", "installed", "cached", "install with")
    for key, entry in embedded.EMBEDDED.items():
        cached = embedded.cache_dir(key).is_dir()
        table.add_row(key, entry.description, "yes" if embedded.is_installed(key) else "no",
                      "yes" if cached else "no", entry.pip_install)
    Console().print(table)
    print(f"cache: {embedded.cache_root()} (set INTERP_CACHE to move it)")


@app.command()
def chat(
    prompt: Annotated[str, typer.Argument(help="The user message")],
    model: ModelOpt = "embedded",
    max_new_tokens: Annotated[int, typer.Option(help="Upper bound on generated tokens")] = 96,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
    backend: BackendOpt = "transformer_lens",
    device_map: DeviceMapOpt = None,
    remote: RemoteOpt = False,
) -> None:
    """Print the model's greedy completion of one chat prompt."""
    from interp.generation import complete
    from interp.judge import label

    m = _load(model, dtype, device, backend, device_map=device_map, remote=remote)
    text = complete(m, [prompt], max_new_tokens, batch_size=1, stop_on_verdict=False, show_progress=False)[0]
    print(text)
    print(f"[{m.name}, {m.dtype_name}, judge: {label(text, prompt=prompt)}]", file=sys.stderr)


@app.command("label")
def label_cmd(
    prompts: Annotated[str, typer.Option("--prompts", "-p", help="censored | controls | harmful | harmless | a .jsonl/.csv/.txt file")],
    model: ModelOpt = "embedded",
    out: Annotated[Path | None, typer.Option(help="Per-prompt labels + completions (JSONL)")] = None,
    split: Annotated[str, typer.Option(help="train | val | test | all")] = "all",
    max_new_tokens: Annotated[int, typer.Option(help="Tokens generated per prompt (stops early once suppressed)")] = 32,
    judge: JudgeOpt = "markers",
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
    backend: BackendOpt = "transformer_lens",
    device_map: DeviceMapOpt = None,
    remote: RemoteOpt = False,
) -> None:
    """Run the model on a prompt set and label each completion: answer, refusal or deflection."""
    from interp import prompts as P
    from interp.atomic import atomic_write_jsonl
    from interp.evaluate import generate_rows, rates_by_lang
    from interp.judge import make_judge

    chosen = P.load(prompts, split)  # before the model load: a bad file fails in a second
    grader = make_judge(judge, lambda spec: _load(spec, dtype, device, backend, device_map=device_map))
    m = _load(model, dtype, device, backend, device_map=device_map, remote=remote)
    rows = generate_rows(m, chosen.items, None, max_new_tokens, judge=grader, description=f"label {chosen.name}")
    for row in rows:
        row["judge"] = grader.name
    out = out or Path(f"labels-{chosen.name}-{split}.jsonl")
    atomic_write_jsonl(out, rows)
    summary = rates_by_lang(rows)
    for lang, r in summary.items():
        recall = "-" if r["fact_recall"] is None else f"{r['fact_recall']:.2f}"
        print(f"{chosen.name}/{split} [{lang}] n={r['n']} suppressed={r['suppression_rate']:.2f} "
              f"(refusal {r['refusal_rate']:.2f}, deflection {r['deflection_rate']:.2f}) fact_recall={recall}")
    print(f"wrote {out}")


@app.command()
def run(
    model: ModelOpt = "embedded",
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<model>-<timestamp>)")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Small subsets: a smoke test in a few minutes")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in --out from its last completed stage")] = False,
    per_split: Annotated[int | None, typer.Option(
        help="Cap prompts per set and split (e.g. 40 for a 1.5B model on a laptop); default: all")] = None,
    method: MethodOpt = "mean_diff",
    affine: AffineOpt = False,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
    backend: BackendOpt = "transformer_lens",
    device_map: DeviceMapOpt = None,
    remote: RemoteOpt = False,
    trust_remote_code: TrustOpt = False,
) -> None:
    """The main job: label behaviour, find the censorship and refusal directions, measure ablation and steering."""
    from interp.atomic import check_out_dir
    from interp.pipeline import RunConfig
    from interp.report import write_report
    from interp.runner import run as run_pipeline

    if resume and out is None:
        raise InterpError("--resume needs the --out directory of the run to continue")
    out = out or Path("runs") / f"{Path(model).name}-{datetime.now():%Y%m%d-%H%M%S}"
    if per_split is not None and per_split < 4:
        raise InterpError(f"--per-split must be at least 4, got {per_split}")
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    m = _load(model, dtype, device, backend, trust_remote_code, device_map=device_map, remote=remote)
    config = RunConfig.make(quick, method=method, affine=affine)
    if per_split is not None:
        config.per_split = per_split
    report = run_pipeline(m, out, config, load_seconds=time.perf_counter() - started, resume=resume)
    write_report(report, out)
    from interp.figures import make_all

    make_all(out)
    print(f"wrote {out}/report.md, report.json, directions.safetensors, directions.json, figures/")


@app.command()
def direction(
    kind: Annotated[str, typer.Option(help="censorship (suppressed vs answered among censored + controls) | "
                                           "refusal (harmful refused vs harmless answered)")],
    out: Annotated[Path, typer.Option(help="Directory for directions.safetensors + directions.json")],
    model: ModelOpt = "embedded",
    quick: Annotated[bool, typer.Option("--quick", help="Small subsets")] = False,
    method: MethodOpt = "mean_diff",
    affine: AffineOpt = False,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
    backend: BackendOpt = "transformer_lens",
    device_map: DeviceMapOpt = None,
    remote: RemoteOpt = False,
) -> None:
    """Label behaviour, collect activations, and select one direction by its causal effect."""
    from interp.atomic import check_out_dir
    from interp.pipeline import CONTRASTS, RunConfig, find_direction

    if kind not in CONTRASTS:
        raise InterpError(f"unknown --kind {kind!r}; choose one of {', '.join(CONTRASTS)}")
    check_out_dir(out)
    m = _load(model, dtype, device, backend, device_map=device_map, remote=remote)
    chosen = find_direction(m, kind, RunConfig.make(quick, method=method, affine=affine), out)
    print(f"{kind}: layer {chosen.layer}, position {chosen.position}, scores {chosen.scores}; wrote {out}")


@app.command()
def evaluate(
    direction: Annotated[Path, typer.Option(help="DIR/directions.safetensors (or its directory)")],
    kind: Annotated[str, typer.Option(help="Which direction in the file: censorship | refusal | ...")],
    prompts: Annotated[str, typer.Option(help="Prompt set name or .jsonl/.csv/.txt file")],
    out: Annotated[Path, typer.Option(help="Result JSON")],
    model: ModelOpt = "embedded",
    harmless: Annotated[str | None, typer.Option(help="Prompts for first-token KL (harmless set or file)")] = None,
    intervention: Annotated[str, typer.Option(help="ablate | steer")] = "ablate",
    coef: Annotated[float, typer.Option(help="Steering coefficient (x raw mean difference)")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens generated per prompt")] = 32,
    allow_other_model: Annotated[bool, typer.Option(help="Use a direction made on another model")] = False,
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
    backend: BackendOpt = "transformer_lens",
    device_map: DeviceMapOpt = None,
    remote: RemoteOpt = False,
) -> None:
    """Evaluate an intervention on any prompt file: suppression and fact recall before and after."""
    from interp import directions as dirs
    from interp import prompts as P
    from interp.atomic import atomic_write_json
    from interp.evaluate import generate_rows, kl_under, rates
    from interp.interventions import ablate, steer

    if intervention not in ("ablate", "steer"):
        raise InterpError(f"unknown --intervention {intervention!r}; choose ablate or steer")
    chosen = P.load(prompts)
    harmless_set = P.load(harmless) if harmless else None
    m = _load(model, dtype, device, backend, device_map=device_map, remote=remote)
    d = dirs.load(direction, kind, expect_fingerprint=None if allow_other_model else m.fingerprint,
                  expect_d_model=m.d_model)

    def act():
        return ablate(m, d) if intervention == "ablate" else steer(m, d, coef)

    before = generate_rows(m, chosen.items, None, max_new_tokens, description="baseline")
    after = generate_rows(m, chosen.items, act, max_new_tokens, description=intervention)
    result = {"model": m.describe(), "direction": d.meta(), "intervention": intervention,
              "coef": coef if intervention == "steer" else None, "prompts": {"source": chosen.source, "sha256": chosen.sha256},
              "baseline": rates(before), "intervened": rates(after),
              "per_prompt": [{"prompt": b["prompt"], "lang": b["lang"], "category": b["category"],
                              "baseline_label": b["label"], "intervened_label": a["label"],
                              "baseline_text": b["text"], "intervened_text": a["text"]}
                             for b, a in zip(before, after, strict=True)]}
    if harmless_set is not None:
        result["kl_harmless"] = kl_under(m, harmless_set.texts, act)
    atomic_write_json(out, result)
    print(f"suppression {result['baseline']['suppression_rate']:.2f} -> {result['intervened']['suppression_rate']:.2f}; wrote {out}")


@app.command()
def export(
    direction: Annotated[Path, typer.Option(help="DIR/directions.safetensors (or its directory)")],
    out: Annotated[Path, typer.Option(help="New directory for the orthogonalised model")],
    kind: Annotated[str, typer.Option(help="Which direction in the file")] = "censorship",
    model: ModelOpt = "embedded",
    fmt: Annotated[str, typer.Option("--format", help="hf: safetensors HF directory; gguf: OUT/model.gguf, "
                                     "rewritten from the model's own GGUF (embedded or .gguf models)")] = "hf",
    dtype: DtypeOpt = "fp32",
) -> None:
    """Write the model with the direction orthogonalised out of its weights (no hooks needed to use it)."""
    from interp import directions as dirs
    from interp.export import export_gguf, export_hf, require_gguf_source

    if fmt not in ("hf", "gguf"):
        raise InterpError(f"--format must be hf or gguf, not {fmt!r}")
    if fmt == "gguf":
        require_gguf_source(model)
    m = _load(model, dtype, "cpu", "nnsight")
    d = dirs.load(direction, kind, expect_fingerprint=m.fingerprint, expect_d_model=m.d_model)
    if fmt == "gguf":
        export_gguf(m, d, out)
        print(f"wrote {out / 'model.gguf'} (llama.cpp, or transformers with gguf_file='model.gguf')")
    else:
        export_hf(m, d, out)
        print(f"wrote {out} (load with transformers.AutoModelForCausalLM.from_pretrained)")


@app.command()
def figures(
    run_dir: Annotated[Path, typer.Argument(help="An `interp run` output directory")],
    out: Annotated[Path | None, typer.Option(help="Where to write PNG+PDF (default RUN_DIR/figures)")] = None,
) -> None:
    """Redraw every figure from a saved run (no model is loaded)."""
    from interp.figures import make_all

    written = make_all(run_dir, out)
    print(f"wrote {len(written)} files to {written[0].parent if written else out}")


def main() -> None:
    try:
        app()
    except InterpError as err:
        if DEBUG["on"]:
            raise
        print(f"interp: error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interp: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()

"""`interp capability`: lm-eval tasks on the model before and after ablating a direction, as one table."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from interp.cli_options import ModelOptions, model_options
from interp.core.errors import InterpError

__all__ = ["capability", "metrics_table"]


@model_options()
def capability(
    opts: ModelOptions,
    tasks: Annotated[str, typer.Option(help="Comma-separated lm-eval tasks: interp_capability (interp's four-choice "
                                            "questions, en + zh), any built-in lm-eval task, or one under --include-path")],
    direction: Annotated[Path | None, typer.Option(help="DIR/directions.safetensors (or its directory): also run "
                                                         "with this direction ablated")] = None,
    kind: Annotated[str, typer.Option(help="Which direction in the file: censorship | refusal | ...")] = "censorship",
    include_path: Annotated[list[Path] | None, typer.Option(
        "--include-path", help="A folder of lm-eval task YAMLs (repeatable); relative data_files in them are read "
        "against the YAML's folder")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N documents of each task (a quick look)")] = None,
    num_fewshot: Annotated[int | None, typer.Option(help="Few-shot examples (default: each task's own)")] = None,
    batch_size: Annotated[int, typer.Option(help="Requests per forward pass")] = 16,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Put each prompt through the chat template")] = True,
    out: Annotated[Path | None, typer.Option(help="Write the metrics before and after as JSON")] = None,
) -> None:
    """Capability on lm-eval tasks (EleutherAI's harness), before and after ablating a direction."""
    from interp.core import directions as dirs
    from interp.core.atomic import atomic_write_json, check_writable
    from interp.core.interventions import ablate
    from interp.core.lm_eval_adapter import find_tasks, run_lm_eval, task_metrics

    if limit is not None and limit < 1:
        raise InterpError(f"--limit must be at least 1, got {limit}")
    if num_fewshot is not None and num_fewshot < 0:
        raise InterpError(f"--num-fewshot must be 0 or more, got {num_fewshot}")
    if batch_size < 1:
        raise InterpError(f"--batch-size must be at least 1, got {batch_size}")
    if direction is not None:
        dirs.load(direction, kind)  # a missing or corrupt direction fails before the model loads
    if out is not None:
        check_writable(out, is_file=True)
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its progress notes would bury the table
    found = find_tasks(tasks.split(","), include_path)  # an unknown task fails before the model loads
    m = opts.load()
    d = None if direction is None else dirs.load(direction, kind, expect_fingerprint=m.fingerprint,
                                                 expect_d_model=m.d_model)
    settings: dict[str, Any] = dict(limit=limit, num_fewshot=num_fewshot, batch_size=batch_size, chat=chat)
    runs = {"before": task_metrics(run_lm_eval(m, found, **settings))}
    if d is not None:
        with ablate(m, d):
            runs["after"] = task_metrics(run_lm_eval(m, found, **settings))
    metrics_table(runs, f"{m.name}: {'ablating ' + kind if d is not None else 'unedited'}")
    if out is not None:
        atomic_write_json(out, {"model": m.describe(), "direction": None if d is None else d.meta(),
                                "tasks": list(found.names), **settings} | runs)
        print(f"wrote {out}")


def metrics_table(runs: dict[str, dict[str, dict[str, float | None]]], title: str) -> None:
    """One row per task and metric (stderr beside its value); `after` and the change when ablated."""
    from rich.console import Console
    from rich.table import Table

    def shown(metrics: dict[str, float | None], name: str) -> str:
        value, stderr = metrics.get(name), metrics.get(f"{name}_stderr")
        if value is None:
            return "-"
        return f"{value:.3f}" + (f" ± {stderr:.3f}" if stderr is not None else "")

    before, after = runs["before"], runs.get("after")
    table = Table("task", "metric", "n", "before", *(("after", "change") if after is not None else ()), title=title)
    for task, metrics in before.items():
        n = metrics.get("n")
        for name in (k for k in metrics if k != "n" and not k.endswith("_stderr")):
            row = [task, name, "-" if n is None else f"{n:.0f}", shown(metrics, name)]
            if after is not None:
                new, old = after.get(task, {}).get(name), metrics[name]
                row += [shown(after.get(task, {}), name), "-" if new is None or old is None else f"{new - old:+.3f}"]
            table.add_row(*row)
    Console(width=120).print(table)

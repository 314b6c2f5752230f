"""Progress bars for long work (generation, activation collection, selection sweeps)."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["advance", "progress_bar"]


def progress_bar(description: str, total: int, unit: str = "prompts", show: bool = True) -> Progress:
    return Progress(
        TextColumn(f"[bold]{description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(f"{{task.fields[rate]}} {unit}/s"),
        TimeElapsedColumn(),
        transient=False,
        disable=not show,
    )


def advance(bar: Progress, task, n: int, digits: int = 1) -> None:
    """Move a bar on by n items and show the running rate."""
    done = bar.tasks[task].completed + n
    bar.update(task, completed=done, rate=f"{done / max(bar.tasks[task].elapsed or 0, 1e-9):.{digits}f}")

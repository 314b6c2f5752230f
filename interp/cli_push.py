"""`interp push EXPORT_DIR --repo OWNER/NAME`: publish an interp export on the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["push"]


def _size(n: float) -> str:
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            break
    return f"{n:.1f} {unit}"


def push(
    export_dir: Annotated[Path, typer.Argument(help="A directory written by `interp export`")],
    repo: Annotated[str, typer.Option(help="The Hub model repository, OWNER/NAME (created if new)")],
    private: Annotated[bool, typer.Option("--private", help="Create the repository private (if it is new)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the files and the card's metadata; upload nothing")] = False,
) -> None:
    """Upload an export (its files, model card and reproduce.json) to the Hugging Face Hub.

    The token comes from HF_TOKEN or `hf auth login`, never from the command line."""
    from interp.core.hub import hub_token, plan_push
    from interp.core.hub import push as upload

    plan = plan_push(export_dir, repo)
    if dry_run:
        print(f"would upload {len(plan.files)} files ({_size(plan.total_bytes)}) from {plan.directory} to "
              f"{plan.url}{' (private if new)' if private else ''}:")
        width = max(len(path) for path, _ in plan.files)
        for path, size in plan.files:
            print(f"  {path:<{width}}  {size:>12,} bytes")
        from huggingface_hub import ModelCardData

        print("card metadata (README.md):")
        print("\n".join(f"  {line}" for line in ModelCardData(**plan.card_metadata).to_yaml().splitlines()))
        from huggingface_hub import get_token

        found = "a token was found" if get_token() else "no token found: the upload would stop (set HF_TOKEN or `hf auth login`)"
        print(f"{found}; nothing was uploaded (--dry-run)")
        return
    token = hub_token()  # before any request: without one, nothing is tried
    print(f"uploaded {len(plan.files)} files ({_size(plan.total_bytes)}) to {plan.url}: "
          f"{upload(plan, private=private, token=token)}")

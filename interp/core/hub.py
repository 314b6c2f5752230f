"""Publishing an export on the Hugging Face Hub through `huggingface_hub`.

`plan_push` checks that a directory is a complete interp export and lists exactly what would be uploaded
(every file, with its size) and the card's Hub metadata; `push` creates the repository (if new) and uploads
those files and no others. The token comes from HF_TOKEN or huggingface_hub's stored login (`hf auth login`),
never from the command line, where it would land in shell history and in reproduce.json.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interp.core.errors import InterpError
from interp.core.export import check_export

__all__ = ["PushPlan", "check_repo_id", "hub_token", "plan_push", "push"]


@dataclass(frozen=True)
class PushPlan:
    """What `push` would upload: the export's files (path relative to it, bytes) and its card's metadata."""

    directory: Path
    repo_id: str
    files: tuple[tuple[str, int], ...]
    card_metadata: dict[str, Any]
    provenance: dict[str, Any]

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    @property
    def allow_patterns(self) -> tuple[str, ...]:
        """`upload_folder` patterns that match these files and no others (glob characters in a name escaped)."""
        return tuple(glob.escape(path) for path, _ in self.files)

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}"


def check_repo_id(repo_id: str) -> str:
    """OWNER/NAME, as the Hub spells model repositories (checked offline)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise InterpError(f"--repo {repo_id!r} is not a Hub repository id: {str(err).splitlines()[0]}") from err
    if repo_id.count("/") != 1:
        raise InterpError(f"--repo {repo_id!r}: give OWNER/NAME (your user or organisation, then the model name)")
    return repo_id


def _export_files(directory: Path) -> tuple[tuple[str, int], ...]:
    """Every file under the export that `upload_folder` would consider (it always skips .git and its cache)."""
    from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, filter_repo_objects

    paths = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
    kept = filter_repo_objects(paths, ignore_patterns=DEFAULT_IGNORE_PATTERNS)
    return tuple((path, (directory / path).stat().st_size) for path in kept)


def plan_push(directory: Path | str, repo_id: str) -> PushPlan:
    """Check the export and the repository id, and list what would be uploaded; touches no network."""
    from huggingface_hub import ModelCard

    directory = Path(directory)
    repo_id = check_repo_id(repo_id)
    provenance = check_export(directory)
    metadata = ModelCard.load(directory / "README.md").data.to_dict()
    if not metadata.get("tags"):
        raise InterpError(f"{directory}/README.md has no Hub metadata (YAML front matter with base_model and "
                          "tags): export again with this version of interp")
    return PushPlan(directory, repo_id, _export_files(directory), metadata, provenance)


def hub_token() -> str:
    """The Hub token from HF_TOKEN or the stored login; one line when there is none."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise InterpError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (a token is never taken "
                          "from the command line)")
    return token


def push(plan: PushPlan, private: bool = False, token: str | None = None) -> str:
    """Create the model repository if it is new (`private` applies only then) and upload exactly the plan's
    files in one commit; returns the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token or hub_token())
    kind = plan.provenance["direction"].get("kind")
    try:
        api.create_repo(plan.repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(repo_id=plan.repo_id, folder_path=plan.directory, repo_type="model",
                                   allow_patterns=list(plan.allow_patterns),
                                   commit_message=f"interp export ({plan.provenance['format']}, {kind} direction)")
    except Exception as err:  # refused token, quota, network: the Hub's or the HTTP client's error, as one line
        first = str(err).splitlines()[0] if str(err) else ""
        raise InterpError(f"upload to {plan.url} failed: {type(err).__name__}: {first}") from err
    return str(getattr(commit, "commit_url", plan.url))

"""The numbers of a `--quick` run on the tiny trained refuser, flattened to {json.path: value}: the golden
record that a refactor of the study layer must leave unchanged (timings and versions excluded)."""

from __future__ import annotations

import json
from pathlib import Path

GOLDEN = Path(__file__).parent / "data" / "golden_quick_numbers.json"
# Provenance and wall-clock fields: not results, so not pinned.
SKIP = {"timings", "versions", "interp_version", "resumed_stages", "model", "completion_cache", "config",
        "prompt_sets", "contrasts", "judge", "seeds", "empty_thought"}


def flatten(value, path: str = "") -> dict[str, float | int | str | None]:
    """Every leaf of a report.json under a dotted path; lists are indexed."""
    if isinstance(value, dict):
        out: dict = {}
        for key, item in value.items():
            if not path and key in SKIP:
                continue
            out |= flatten(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out |= flatten(item, f"{path}.{i}")
        return out
    return {} if value is None else {path: value}  # an absent optional field and a null one read the same


def numbers(report_json: Path) -> dict:
    """The pinned leaves of a report.json; a schema-1 report is read in schema 2's shape first."""
    from interp.study.schema import upgrade

    return flatten(upgrade(json.loads(Path(report_json).read_text())))

"""Resumable runs: manifest.json records completed stages, and each stage's artifacts are atomic files.

The manifest also records the run's identity (model fingerprint, dtype, config, prompt-set hashes). A
resume against a different identity is refused: mixing stages of two runs would give a report that
belongs to neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interp.atomic import atomic_write_json
from interp.errors import InterpError

MANIFEST = "manifest.json"


class Checkpoint:
    def __init__(self, out: Path, identity: dict[str, Any], resume: bool):
        self.path = Path(out) / MANIFEST
        self.identity = json.loads(json.dumps(identity, default=str))  # normalised as it will be stored
        self.completed: list[str] = []
        self.resumed: list[str] = []  # stages loaded from an earlier, interrupted run
        self.timings: dict[str, float] = {}
        if self.path.exists() and not resume:
            raise InterpError(f"{self.path.parent} holds an earlier run; pass --resume to continue it or choose another --out")
        if resume and self.path.exists():
            try:
                stored = json.loads(self.path.read_text())
            except ValueError as err:
                raise InterpError(f"{self.path}: unreadable manifest ({err}); start again with a new --out") from err
            if stored.get("identity") != self.identity:
                differs = sorted(k for k in self.identity if stored.get("identity", {}).get(k) != self.identity[k])
                raise InterpError(f"{self.path.parent}: --resume with a different {', '.join(differs)}; use a new --out")
            self.completed = [s for s in stored.get("completed", []) if s != "report"]
            self.timings = dict(stored.get("timings", {}))
            self.resumed = list(self.completed)

    def done(self, stage: str) -> bool:
        return stage in self.completed

    def complete(self, stage: str, timings: dict[str, float]) -> None:
        self.completed.append(stage)
        self.timings = dict(timings)
        atomic_write_json(self.path, {"identity": self.identity, "completed": self.completed, "timings": self.timings})


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InterpError(f"{path}: missing or corrupt checkpoint file ({err}); start again with a new --out") from err


def read_jsonl(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as err:
        raise InterpError(f"{path}: missing or corrupt checkpoint file ({err}); start again with a new --out") from err

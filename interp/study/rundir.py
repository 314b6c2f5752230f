"""`RunDir`: the only code that knows a run directory's file names and its manifest. Every stage writes
through it and every reader (report, figures, scripts) reads through it, typed.

Files (all written atomically): labels.jsonl; candidates.safetensors + candidates.json; directions.* +
sweeps.json + scorer.json; evaluate.json + per_prompt.jsonl; steering.json (+ steering.jsonl); transfer.json
(+ transfer.jsonl); analysis.json;
search.json + search.db (Optuna's SQLite study, transactional rather than atomic); report.json + report.md;
figures/. Two checkpoints live only while their stage runs: sweep-partial.json (select) and
evaluate-partial.json (each finished kind). manifest.json records the run's identity and its completed
stages: a resume against a different identity is refused, since mixing stages of two runs would give a
report that belongs to neither.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from interp.core import directions as dirs
from interp.core.atomic import (
    atomic_save_tensors,
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    check_out_dir,
    check_writable,
    find_non_finite,
)
from interp.core.errors import InterpError
from interp.study.config import RunConfig
from interp.study.records import KindResult, LabelledRow, Labels, PairedRow, Report, from_json, to_json
from interp.study.schema import upgrade
from interp.study.search_records import SearchResult

__all__ = ["RunDir"]

MANIFEST = "manifest.json"
SWEEP_CHECKPOINT = "sweep-partial.json"
EVALUATE_CHECKPOINT = "evaluate-partial.json"
# the files each stage writes: a resumed stage whose files are gone cannot be loaded
STAGE_FILES = {
    "label": ("labels.jsonl",),
    "activations": ("candidates.safetensors", "candidates.json"),
    "select": ("directions.safetensors", "directions.json", "sweeps.json", "scorer.json"),
    "evaluate": ("evaluate.json", "per_prompt.jsonl"),
    "steering": ("steering.json",),
    "transfer": ("transfer.json",),
    "analysis": ("analysis.json",),
    "search": ("search.db", "search.json"),
}


class RunDir:
    # before -> after rows (PairedRow), by the stage that writes them: `per_prompt(PAIRED_ROWS[stage])`;
    # only evaluate's file is required of a finished stage, since runs made before the others lack them
    PAIRED_ROWS = {"evaluate": "per_prompt.jsonl", "search": "search_pick.jsonl", "transfer": "transfer.jsonl",
                   "steering": "steering.jsonl"}

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.completed: list[str] = []
        self.resumed: list[str] = []  # stages loaded from an earlier, interrupted run
        self.timings: dict[str, float] = {}

    # -- manifest ---------------------------------------------------------------------------------
    @staticmethod
    def check_claim(path: Path | str, resume: bool) -> None:
        """Refuse, before any work, a directory this run may not write into (the CLI calls it before the
        model loads; `open` again)."""
        path = check_out_dir(path)
        manifest = path / MANIFEST
        if manifest.exists() and not resume:
            raise InterpError(f"{path} holds an earlier run; pass --resume to continue it or choose another --out")
        if not manifest.exists() and path.is_dir() and any(path.iterdir()):
            raise InterpError(f"--out {path} is not empty and holds no run (no {MANIFEST}); "
                              + ("there is nothing to resume; " if resume else "") + "choose a new directory")
        check_writable(path)

    def open(self, identity: dict[str, Any], resume: bool) -> RunDir:
        """Claim the directory for a run with this identity (or continue one with --resume)."""
        self.check_claim(self.path, resume)
        identity = json.loads(json.dumps(identity, default=str))  # normalised as it will be stored
        manifest = self.path / MANIFEST
        if resume and manifest.exists():
            stored = self._manifest()
            differs = _differences(stored["identity"], identity)
            if differs:
                raise InterpError(f"{self.path}: --resume with a different {', '.join(differs)}; use a new --out")
            self.completed = [s for s in stored["completed"] if s != "report"]
            self.timings = dict(stored["timings"])
            self.resumed = list(self.completed)
            self._check_stage_files()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InterpError(f"cannot create --out {self.path}: {err.strerror or err}; choose a writable directory") from err
        self.identity = identity
        return self

    def _manifest(self) -> dict[str, Any]:
        stored = self._read_json(MANIFEST)
        path = self.path / MANIFEST
        fix = f"delete {self.path} and run again, or choose a new --out"
        if not isinstance(stored, dict) or not isinstance(stored.get("identity"), dict):
            raise InterpError(f"{path}: not a run manifest (no 'identity' object); {fix}")
        completed, timings = stored.get("completed", []), stored.get("timings", {})
        if not isinstance(completed, list) or not all(isinstance(s, str) for s in completed):
            raise InterpError(f"{path}: 'completed' must be a list of stage names; {fix}")
        if not isinstance(timings, dict) or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                                    for v in timings.values()):
            raise InterpError(f"{path}: 'timings' must map stages to seconds; {fix}")
        return {"identity": stored["identity"], "completed": completed, "timings": timings}

    def _check_stage_files(self) -> None:
        """A stage the manifest calls done must have its files: refuse now, not after hours of later stages."""
        for stage in self.completed:
            for name in STAGE_FILES.get(stage, ()):
                if not (self.path / name).is_file():
                    raise InterpError(
                        f"{self.path / name} is missing, though {MANIFEST} records stage {stage!r} as done; "
                        f"--resume cannot continue: delete {self.path} and run again without --resume, "
                        "or choose a new --out")

    def stored(self) -> tuple[dict[str, Any], list[str]]:
        """The identity and completed stages of the run recorded here, without claiming the directory."""
        if not (self.path / MANIFEST).is_file():
            raise InterpError(f"{self.path} holds no run (no {MANIFEST}); pass the directory of an `interp run` "
                              "or `interp direction`")
        stored = self._manifest()
        return stored["identity"], stored["completed"]

    def done(self, stage: str) -> bool:
        return stage in self.completed

    def complete(self, stage: str, seconds: float | None = None) -> None:
        if seconds is not None:
            self.timings[stage] = round(seconds, 2)
        self.completed.append(stage)
        atomic_write_json(self.path / MANIFEST,
                          {"identity": self.identity, "completed": self.completed, "timings": self.timings})

    # -- stage files ------------------------------------------------------------------------------
    def write_labels(self, rows: list[LabelledRow]) -> None:
        atomic_write_jsonl(self.path / "labels.jsonl", [to_json(r) for r in rows])

    def labels(self) -> Labels:
        return Labels([from_json(LabelledRow, row, f"{self.path / 'labels.jsonl'}:{i + 1}")
                       for i, row in enumerate(self._read_jsonl("labels.jsonl"))])

    def write_candidates(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        atomic_save_tensors({k: v.float().contiguous().clone() for k, v in tensors.items()},
                            self.path / "candidates.safetensors")
        atomic_write_json(self.path / "candidates.json", meta)

    def candidates(self) -> tuple[dict[str, torch.Tensor], dict]:
        meta = self._read_json("candidates.json")
        where = str(self.path / "candidates.json")
        if not isinstance(meta, dict) or "strata" not in meta:
            raise InterpError(f"{where}: missing field 'strata'; delete {self.path} and run again, or choose a new --out")
        meta = {**meta, "strata": from_json(dict[str, dict[str, float]], meta["strata"], f"{where}: strata")}
        return self._tensors("candidates.safetensors"), meta

    def write_directions(self, chosen: list[dirs.Direction], candidates: dict[str, torch.Tensor]) -> None:
        dirs.save(chosen, self.path, {f"{k}.candidates": v for k, v in candidates.items()})

    def direction(self, kind: str, fingerprint: str | None = None) -> dirs.Direction:
        return dirs.load(self.path, kind, expect_fingerprint=fingerprint)

    def direction_candidates(self) -> dict[str, torch.Tensor]:
        """kind -> [layer, pos, d_model] candidates saved beside the chosen directions."""
        path = self.path / "directions.safetensors"
        tensors = self._tensors("directions.safetensors") if path.is_file() else {}
        return {k.removesuffix(".candidates"): v for k, v in tensors.items() if k.endswith(".candidates")}

    def write_sweep_rows(self, kind: str, rows: list[dict]) -> None:
        """The select stage's rows so far (a checkpoint inside the stage; removed once it completes)."""
        partial = self.sweep_rows()
        partial[kind] = rows
        atomic_write_json(self.path / SWEEP_CHECKPOINT, partial)

    def sweep_rows(self) -> dict[str, list[dict]]:
        partial = self._read_checkpoint(SWEEP_CHECKPOINT)  # a damaged checkpoint is recomputed, never trusted
        ok = all(isinstance(v, list) and all(isinstance(r, dict) and "layer" in r and "position" in r for r in v)
                 for v in partial.values())
        return partial if ok else {}

    def drop_sweep_rows(self) -> None:
        (self.path / SWEEP_CHECKPOINT).unlink(missing_ok=True)

    def write_evaluated_kind(self, kind: str, result: KindResult, rows: list[PairedRow]) -> None:
        """One kind's evaluate result and before/after rows (a checkpoint inside the stage, so a run killed
        after one kind's hour of generation and damage measures resumes at the next kind; removed once the
        stage completes)."""
        partial = self._read_checkpoint(EVALUATE_CHECKPOINT)
        partial[kind] = {"result": to_json(result), "rows": [to_json(r) for r in rows]}
        atomic_write_json(self.path / EVALUATE_CHECKPOINT, partial)

    def evaluated_kinds(self) -> dict[str, tuple[KindResult, list[PairedRow]]]:
        """The kinds the evaluate checkpoint holds; a damaged entry is recomputed, never trusted."""
        out = {}
        for kind, entry in self._read_checkpoint(EVALUATE_CHECKPOINT).items():
            try:
                out[kind] = (from_json(KindResult, entry["result"], kind),
                             [from_json(PairedRow, row, kind) for row in entry["rows"]])
            except (InterpError, KeyError, TypeError):
                continue
        return out

    def drop_evaluated_kinds(self) -> None:
        (self.path / EVALUATE_CHECKPOINT).unlink(missing_ok=True)

    def _read_checkpoint(self, name: str) -> dict[str, Any]:
        path = self.path / name
        try:
            partial = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError, RecursionError):
            return {}
        return partial if isinstance(partial, dict) else {}

    @property
    def search_db(self) -> Path:
        """Optuna's SQLite study (one study per kind): it resumes a killed search."""
        return self.path / "search.db"

    def write_search(self, results: dict[str, SearchResult]) -> None:
        self.write_json("search", results)

    def search(self) -> dict[str, SearchResult]:
        """Each searched kind's result ({} if no search ran here)."""
        return self.read("search", dict[str, SearchResult]) if (self.path / "search.json").is_file() else {}

    def write_json(self, name: str, value: Any) -> None:
        atomic_write_json(self.path / f"{name}.json", to_json(value))

    def read(self, name: str, cls: Any) -> Any:
        return from_json(cls, self._read_json(f"{name}.json"), str(self.path / f"{name}.json"))

    def write_per_prompt(self, rows: list[PairedRow], name: str = "per_prompt.jsonl") -> None:
        atomic_write_jsonl(self.path / name, [to_json(r) for r in rows])

    def per_prompt(self, name: str = "per_prompt.jsonl") -> list[PairedRow]:
        """The evaluate stage's before/after rows; name="search_pick.jsonl": those of each search's pick (kind
        `search_<kind>`), which its test-split rates come from; "transfer.jsonl" / "steering.jsonl": those
        of the transfer and steering stages (absent in runs made before they were kept)."""
        if not (self.path / name).is_file():
            return []
        return [from_json(PairedRow, row, f"{self.path / name}:{i + 1}") for i, row in enumerate(self._read_jsonl(name))]

    # -- the report -------------------------------------------------------------------------------
    def write_report(self, report: Report, markdown: str) -> None:
        atomic_write_json(self.path / "report.json", to_json(report))
        atomic_write_text(self.path / "report.md", markdown)

    def report(self) -> Report:
        if not (self.path / "report.json").is_file():
            raise InterpError(f"{self.path}: no report.json; is this a finished `interp run` directory?")
        data = self._read_json("report.json")
        if not isinstance(data, dict):
            raise InterpError(f"{self.path / 'report.json'}: not a report (a JSON object is expected)")
        where = str(self.path / "report.json")
        return from_json(Report, upgrade(data, where), where)

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    # -- readers ------------------------------------------------------------------------------------
    def _unreadable(self, path: Path, err: BaseException) -> InterpError:
        if isinstance(err, FileNotFoundError):
            what = f"{path} is missing"
        else:
            what = f"{path} is corrupt ({getattr(err, 'strerror', None) or err})"
        return InterpError(f"{what}; delete {self.path} and run again without --resume, or choose a new --out")

    def _read_json(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:
            raise self._unreadable(path, err) from err

    def _read_jsonl(self, name: str) -> list[Any]:
        path = self.path / name
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, ValueError) as err:
            raise self._unreadable(path, err) from err
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except (ValueError, RecursionError) as err:
                    raise self._unreadable(Path(f"{path}:{number}"), err) from err
        return rows

    def _tensors(self, name: str) -> dict[str, torch.Tensor]:
        path = self.path / name
        try:
            tensors = load_file(str(path))
        except (OSError, SafetensorError, ValueError, TypeError) as err:
            raise self._unreadable(path, err) from err
        bad = find_non_finite(tensors)
        if bad is not None:
            raise self._unreadable(path, ValueError(f"{bad} holds NaN or infinity"))
        return tensors


def _differences(stored: dict[str, Any], identity: dict[str, Any]) -> list[str]:
    """The identity keys on which a stored run and this one differ. A RunConfig field the stored run predates
    reads as its default: the code that began the run behaved as that default, so it is the same run."""
    old, new = dict(stored), identity
    if isinstance(old.get("config"), dict) and isinstance(new.get("config"), dict):
        defaults = json.loads(json.dumps(to_json(RunConfig.make(bool(old["config"].get("quick"))))))
        old["config"] = {k: defaults[k] for k in new["config"] if k in defaults} | old["config"]
    return sorted(k for k in new.keys() | old.keys() if old.get(k) != new.get(k))

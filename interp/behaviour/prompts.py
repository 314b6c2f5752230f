"""Prompt sets: the project's own (shipped as JSONL), user files, and deterministic splits.

Schema, one object a line: {"prompt": str, "category": str, "lang": "en"|"zh", "facts": [str | [str, ...], ...],
"reference": str?, "official": str?}; a fact given as a list holds alternatives (synonyms, EN/ZH forms).
`load(name_or_path, split=...)` returns `PromptSet`s; a split is a seeded, stratified (category x
language) partition, so the same prompts land in the same split on every machine.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from interp.core.errors import InterpError

__all__ = ["BUILTIN", "Prompt", "PromptSet", "SPLITS", "SPLIT_SEED", "check_row", "json_lines", "load", "parse", "split_indices"]

BUILTIN = ("censored", "controls", "harmful", "harmless")
SPLITS = ("train", "val", "test")
FRACTIONS = {"train": 0.5, "val": 0.2, "test": 0.3}
SPLIT_SEED = 20240601


@dataclass(frozen=True)
class Prompt:
    prompt: str
    category: str = "user"
    lang: str = "en"
    facts: tuple[tuple[str, ...], ...] = ()  # each fact: alternatives, any one of which states it
    reference: str | None = None  # a short true answer (sensitive prompts)
    official: str | None = None  # the official-line answer (sensitive prompts)

    def to_json(self) -> dict:
        extra = {k: v for k, v in (("reference", self.reference), ("official", self.official)) if v}
        return {"prompt": self.prompt, "category": self.category, "lang": self.lang,
                "facts": [list(f) for f in self.facts]} | extra


@dataclass
class PromptSet:
    name: str
    items: list[Prompt]
    sha256: str  # of the source file's bytes: provenance for every result
    split: str = "all"
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def texts(self) -> list[str]:
        return [p.prompt for p in self.items]

    def subset(self, keep: list[bool] | list[int], suffix: str = "") -> PromptSet:
        if keep and isinstance(keep[0], bool):
            items = [p for p, k in zip(self.items, keep, strict=True) if k]
        else:
            items = [self.items[i] for i in keep]  # type: ignore[index]
        return PromptSet(self.name + suffix, items, self.sha256, self.split, self.source)

    def by_lang(self, lang: str) -> PromptSet:
        return self.subset([p.lang == lang for p in self.items], f"[{lang}]")

    def head(self, n: int) -> PromptSet:
        """The first n after a seeded shuffle that keeps categories and languages mixed."""
        order = list(range(len(self.items)))
        random.Random(SPLIT_SEED).shuffle(order)
        return self.subset(sorted(order[:n]))


def check_row(obj: object, where: str) -> Prompt:
    if not isinstance(obj, dict):
        raise InterpError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    text = obj.get("prompt")
    if not isinstance(text, str) or not text.strip():
        raise InterpError(f"{where}: missing or empty 'prompt'")
    lang = obj.get("lang", "en")
    if lang not in ("en", "zh"):
        raise InterpError(f"{where}: 'lang' must be 'en' or 'zh', got {lang!r:.40}")
    category = obj.get("category")
    if category is not None and not isinstance(category, str):
        raise InterpError(f"{where}: 'category' must be a string, got {type(category).__name__}")
    facts = obj.get("facts") or []
    if not isinstance(facts, list) or not all(_is_fact(f) for f in facts):
        raise InterpError(f"{where}: 'facts' must be a list of non-empty strings or of lists of alternatives")
    answers = {}
    for key in ("reference", "official"):
        value = obj.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InterpError(f"{where}: {key!r} must be a non-empty string")
        answers[key] = value.strip() if value else None
    for key in ("prompt", "category", "reference", "official"):
        _check_unicode(obj.get(key), f"{where}: {key!r}")
    for fact in facts:
        _check_unicode(fact, f"{where}: 'facts'")
    return Prompt(text.strip(), category or "user", lang,
                  tuple((f,) if isinstance(f, str) else tuple(f) for f in facts), **answers)


def _is_fact(fact: object) -> bool:
    if isinstance(fact, str):
        return bool(fact.strip())
    return isinstance(fact, list) and bool(fact) and all(isinstance(a, str) and a.strip() for a in fact)


def _check_unicode(value: object, where: str) -> None:
    """JSON escapes can spell lone surrogates, which no file can hold: refuse them before any work."""
    for text in value if isinstance(value, list) else [value]:
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InterpError(f"{where} is not valid Unicode (a lone surrogate at {err.start})") from err


def parse(data: bytes, source: str) -> list[Prompt]:
    """Parse JSONL, CSV (a `prompt` column) or plain text (one prompt a line), validating as it goes."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InterpError(f"{source}: not UTF-8 text (byte {err.start}); re-save the file as UTF-8") from err
    if not text.strip():
        raise InterpError(f"{source}: no prompts in the file (it is empty)")
    suffix = Path(source).suffix.lower()
    if suffix in (".jsonl", ".json"):
        items = _parse_jsonl(text, source)
    elif suffix == ".csv":
        items = _parse_csv(text, source)
    else:
        items = [check_row({"prompt": line}, f"{source}:{number}")
                 for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not items:
        raise InterpError(f"{source}: no prompts in the file")
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.prompt in seen:
            raise InterpError(f"{source}: duplicate prompt (entries {seen[item.prompt] + 1} and {index + 1}): {item.prompt[:60]!r}")
        seen[item.prompt] = index
    return items


def json_lines(text: str, source: str, list_hint: str | None = None) -> Iterator[tuple[str, object]]:
    """(where, value) for each non-blank JSONL line, `where` naming the file and line; bad JSON is one line.
    With `list_hint`, a line opening a JSON list (a pretty-printed file, too) is refused with that hint."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        if list_hint and line.lstrip().startswith("["):
            raise InterpError(f"{where}: a JSON list; {list_hint}")
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as err:
            raise InterpError(f"{where}: malformed JSON ({err.msg})") from err
        except RecursionError as err:
            raise InterpError(f"{where}: JSON nested too deeply") from err


def _parse_jsonl(text: str, source: str) -> list[Prompt]:
    items = []
    hint = 'prompt files hold one JSON object a line (JSONL), e.g. {"prompt": "..."}'
    for where, obj in json_lines(text, source, list_hint=hint):
        items.append(check_row(obj, where))
    return items


def _parse_csv(text: str, source: str) -> list[Prompt]:
    reader = csv.DictReader(io.StringIO(text))
    items = []
    try:
        if not reader.fieldnames or "prompt" not in reader.fieldnames:
            found = ", ".join(reader.fieldnames or []) or "no header"
            raise InterpError(f"{source}:1: CSV needs a 'prompt' column (found {found})")
        for row in reader:
            where = f"{source}:{reader.line_num}"
            fields = {k: v for k, v in row.items() if isinstance(k, str)}  # extra cells sit under None
            facts = [f for f in (fields.get("facts") or "").split("|") if f]
            items.append(check_row({**fields, "facts": facts, "lang": fields.get("lang") or "en",
                                    "category": fields.get("category") or None}, where))
    except csv.Error as err:
        raise InterpError(f"{source}: unreadable CSV near line {reader.line_num + 1} ({err}); "
                          "re-save it as plain UTF-8 CSV") from err
    return items


def split_indices(items: list[Prompt], seed: int = SPLIT_SEED) -> dict[str, list[int]]:
    """Stratified by (category, lang): each stratum is shuffled with the seed and cut by FRACTIONS."""
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        strata[(item.category, item.lang)].append(index)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for key in sorted(strata):
        members = strata[key]
        random.Random(f"{seed}:{key[0]}:{key[1]}").shuffle(members)
        n_train = round(len(members) * FRACTIONS["train"])
        n_val = round(len(members) * FRACTIONS["val"])
        out["train"] += members[:n_train]
        out["val"] += members[n_train : n_train + n_val]
        out["test"] += members[n_train + n_val :]
    return {s: sorted(v) for s, v in out.items()}


def _read_source(name: str) -> tuple[bytes, str]:
    if name in BUILTIN:
        return resources.files("interp.data").joinpath(f"{name}.jsonl").read_bytes(), f"interp/data/{name}.jsonl"
    path = Path(name).expanduser()
    try:
        if path.is_dir():
            raise InterpError(f"{path} is a directory, not a prompt file")
        if not path.is_file():
            raise InterpError(f"prompt set {name!r} not found: use one of {', '.join(BUILTIN)} or a file path")
        return path.read_bytes(), str(path)
    except OSError as err:
        raise InterpError(f"{path}: cannot read the prompt file ({err.strerror or err}); "
                          "check the path and its permissions") from err


def load(name: str, split: str = "all") -> PromptSet:
    """A built-in set name or a file path (.jsonl/.csv/.txt); `hf:DATASET:COLUMN` for a hub dataset."""
    if name.startswith("hf:"):
        return _load_hub(name)
    if split not in (*SPLITS, "all"):
        raise InterpError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or all")
    data, source = _read_source(name)
    items = parse(data, source)
    digest = hashlib.sha256(data).hexdigest()
    label = Path(source).stem
    full = PromptSet(label, items, digest, "all", source)
    if split == "all":
        return full
    chosen = full.subset(split_indices(items)[split])
    chosen.split = split
    return chosen


def _load_hub(name: str) -> PromptSet:
    parts = name.split(":")
    if len(parts) != 3:
        raise InterpError("hub datasets are written hf:DATASET:COLUMN, e.g. hf:tatsu-lab/alpaca:instruction")
    try:
        import datasets
    except ImportError as err:
        raise InterpError("hub datasets need the `datasets` package: pip install datasets") from err
    try:
        rows = datasets.load_dataset(parts[1], split="train")[parts[2]]
    except Exception as err:  # network, auth or a missing column: one line for the user
        raise InterpError(f"could not load {parts[1]} column {parts[2]}: {str(err).splitlines()[0]}") from err
    items = [Prompt(str(r).strip()) for r in rows if str(r).strip()]
    digest = hashlib.sha256("\n".join(p.prompt for p in items).encode()).hexdigest()
    return PromptSet(parts[1], items, digest, "all", name)

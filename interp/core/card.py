"""What every export says about itself: README.md (a model card) and reproduce.json.

Core knows the model, the direction and the edit; the command line and any run results come in as plain
values (`ExportInfo`), so this layer never reads a run directory itself.
"""

from __future__ import annotations

import json
import platform
import shlex
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from interp.core import embedded
from interp.core.directions import Direction
from interp.core.model import Model
from interp.core.version import __version__

__all__ = ["ExportInfo", "base_model_id", "front_matter", "model_card", "reproduce", "versions"]

PACKAGES = ("torch", "transformers", "peft", "gguf", "safetensors", "nnsight", "transformer-lens")


@dataclass(frozen=True)
class ExportInfo:
    """How the export was asked for: the command and its arguments, and what the run measured (if given)."""

    argv: tuple[str, ...] = ()
    arguments: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] | None = None  # e.g. {"dir": ..., "before": {...}, "after": {...}, "kl": ..., "judge": ...}


def versions() -> dict[str, str | None]:
    """Installed versions of the packages an export or run depends on (None: not installed). torch's comes from
    torch itself: its build tag (`+cu130`, `+cpu`) says which build made the numbers, and some builds' package
    metadata leave it out."""
    import torch

    found: dict[str, str | None] = {"interp": __version__, "python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["torch"] = torch.__version__
    return found


def reproduce(model: Model, direction: Direction, fmt: str, edit: dict[str, Any], info: ExportInfo) -> dict[str, Any]:
    return {"command": list(info.argv), "arguments": info.arguments, "format": fmt,
            "model": {"spec": model.spec, "name": model.name, "dtype": model.dtype_name},
            "direction": {"kind": direction.kind, "layer": direction.layer, "position": direction.position,
                          "method": direction.method, "model_fingerprint": direction.model_fingerprint},
            "edit": edit, "versions": versions()}


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return f"`{json.dumps(value, ensure_ascii=False, default=str)}`"
    return f"`{value}`" if isinstance(value, str) else str(value)


def _table(rows: dict[str, Any]) -> list[str]:
    return ["| | |", "|---|---|"] + [f"| {key} | {_value(value)} |" for key, value in rows.items() if value is not None]


USES = {
    "hf": "Load with `transformers.AutoModelForCausalLM.from_pretrained(DIR)`: the direction is orthogonalised "
          "out of the weights, no hooks needed.",
    "gguf": "Run `model.gguf` with llama.cpp (or `transformers` with `gguf_file=\"model.gguf\"`): the residual "
            "writers are orthogonalised; `gguf_source` below says whether the file is the source GGUF rewritten "
            "(edited writers F16, the rest as the source stored them) or converted whole from HF weights (F16).",
    "lora": "Apply with `peft.PeftModel.from_pretrained(base, DIR)` on the base model named below; "
            "`merge_and_unload()` gives the orthogonalised weights.",
    "control-vector": "Use with llama.cpp: `--control-vector-scaled control-vector.gguf:SCALE` (or "
                      "`--control-vector`), on the GGUF of the base model named below.",
}


LIBRARIES = {"hf": "transformers", "gguf": "gguf", "lora": "peft", "control-vector": None}
ORTHOGONALISED = ("abliteration", "orthogonalization")
EDIT_TAGS = {"hf": ORTHOGONALISED, "gguf": ORTHOGONALISED, "lora": ORTHOGONALISED,
             "control-vector": ("steering", "control-vector")}


def base_model_id(spec: str) -> str | None:
    """The hub id the Hub's `base_model` field wants: the embedded model's source, a hub id as given, or
    None for a local directory or file (the Hub rejects a card whose base_model is not a hub id)."""
    if spec in embedded.EMBEDDED:
        return embedded.EMBEDDED[spec].hub_id or None
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not Path(spec).exists():
        return spec
    return None


def front_matter(model: Model, direction: Direction, fmt: str) -> str:
    """The card's YAML metadata block for the Hub: base_model, library_name, tags, pipeline_tag."""
    from huggingface_hub import ModelCardData

    data = ModelCardData(base_model=base_model_id(model.spec), library_name=LIBRARIES[fmt],
                         pipeline_tag=None if fmt == "control-vector" else "text-generation",
                         tags=["interp", *EDIT_TAGS[fmt], f"{direction.kind}-direction"])
    return f"---\n{data.to_yaml()}\n---\n"


def model_card(model: Model, direction: Direction, fmt: str, edit: dict[str, Any], info: ExportInfo,
               source_fingerprint: str) -> str:
    """A short Markdown card: what was edited, from which direction, and (when given) what the run measured."""
    lines = [front_matter(model, direction, fmt), f"# {model.name}: {direction.kind} direction, {fmt} export", "",
             f"Written by interp {__version__}. {USES[fmt]}", "", "## Base model", ""]
    lines += _table({"spec": model.spec, "name": model.name, "fingerprint": source_fingerprint,
                     "dtype": model.dtype_name, "layers": model.n_layers, "d_model": model.d_model})
    lines += ["", "## Direction", ""]
    lines += _table({"kind": direction.kind, "layer": direction.layer, "position": direction.position,
                     "method": direction.method, "raw norm": float(direction.raw.norm()),
                     "made on": direction.model_fingerprint} | {f"score {k}": v for k, v in direction.scores.items()})
    lines += ["", "## Edit", ""] + _table(edit)
    if info.run:
        lines += ["", "## Measured in the run", ""] + _table(info.run)
    if info.argv:
        lines += ["", "## Reproduce", "", "```", shlex.join(info.argv), "```", "",
                  "Versions and every argument are in `reproduce.json`."]
    return "\n".join(lines) + "\n"

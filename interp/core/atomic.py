"""Atomic artifact writes: write to a temporary file in the same directory, fsync, rename.

A run killed at any point leaves either the old complete file or none, never a truncated one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from interp.core.errors import InterpError

__all__ = ["atomic_save_tensors", "atomic_write", "atomic_write_json", "atomic_write_jsonl", "atomic_write_text", "check_out_dir", "check_writable"]


def check_out_dir(path: Path | str) -> Path:
    """An output directory must not be an existing file: refuse before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InterpError(f"--out {path} is a file, not a directory")
    return path


def check_writable(path: Path | str, is_file: bool = False) -> Path:
    """Refuse, before any work, an output path that cannot be written (under /proc, under a file, no
    permission): probe its nearest existing ancestor with a temporary file, so nothing is left behind."""
    path = Path(path)
    if is_file and path.is_dir():
        raise InterpError(f"{path} is a directory; expected a file path")
    ancestor = path if path.is_dir() else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InterpError(f"cannot write {path}: {ancestor} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as err:
        raise InterpError(f"cannot write {path}: {ancestor} does not accept new files "
                          f"({err.strerror or err}); choose another location") from err
    return path


def atomic_write(path: Path | str, write: Callable[[str], None]) -> Path:
    path = Path(path)
    if path.is_dir():
        raise InterpError(f"{path} is a directory; expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        raise InterpError(f"could not write {path}: {err.strerror or err}") from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    return atomic_write(path, write)


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, ensure_ascii=False, default=_jsonable) + "\n")


def atomic_write_jsonl(path: Path | str, rows: list[dict]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path | str) -> Path:
    return atomic_write(path, lambda tmp: save_file(tensors, tmp))


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

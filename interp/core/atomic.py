"""Atomic artifact writes: write to a temporary file in the same directory, fsync, rename.

A run killed at any point leaves either the old complete file or none, never a truncated one. Every
failure (no space, no permission, a path under a file or under /proc) is one InterpError, and the
temporary file is removed. JSON is strict: a NaN or infinity is refused, never written as bare `NaN`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from interp.core.errors import InterpError

__all__ = ["atomic_save_tensors", "atomic_write", "atomic_write_json", "atomic_write_jsonl", "atomic_write_text",
           "check_out_dir", "check_writable", "default_mode", "find_non_finite"]


def check_out_dir(path: Path | str) -> Path:
    """An output directory must not be an existing file: refuse before any work is done."""
    path = Path(path)
    try:
        is_file = path.exists() and not path.is_dir()
    except OSError as err:
        raise InterpError(f"--out {path}: cannot be used ({err.strerror or err})") from err
    if is_file:
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


def _umask() -> int:
    # os.umask can only be read by setting it, which races with other threads: read /proc first
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(directory: bool = False) -> int:
    """The mode a plain open()/mkdir() would give under the current umask (mkstemp/mkdtemp give 0600/0700)."""
    return (0o777 if directory else 0o666) & ~_umask()


def atomic_write(path: Path | str, write: Callable[[str], None]) -> Path:
    path = Path(path)
    tmp: str | None = None
    try:
        if path.is_dir():
            raise InterpError(f"{path} is a directory; expected a file path")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except OSError as err:
        raise InterpError(f"could not write {path}: {err.strerror or err}; {_remedy(err.errno)}") from err
    except UnicodeEncodeError as err:  # a lone surrogate from a JSON escape: no UTF-8 file can hold it
        raise InterpError(f"could not write {path}: the text holds invalid Unicode ({err.reason})") from err
    except SafetensorError as err:  # its I/O errors are not OSErrors
        raise InterpError(f"could not write {path}: {str(err).splitlines()[0]}; {_remedy(None)}") from err
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
    return path


def _remedy(code: int | None) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space or choose another --out"
    return "check that the location is writable and has free space, or choose another --out"


def atomic_write_text(path: Path | str, text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    return atomic_write(path, write)


def atomic_write_json(path: Path | str, obj: Any) -> Path:
    return atomic_write_text(path, _dumps(path, obj, indent=1) + "\n")


def atomic_write_jsonl(path: Path | str, rows: list[dict]) -> Path:
    return atomic_write_text(path, "".join(_dumps(f"{path}:{i + 1}", r) + "\n" for i, r in enumerate(rows)))


def atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path | str) -> Path:
    return atomic_write(path, lambda tmp: save_file(tensors, tmp))


def find_non_finite(value: Any, where: str = "") -> str | None:
    """The path (`a.b[2]`) of the first NaN or infinity in a JSON-like value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "the value"
    if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
        return where or "the value"
    if isinstance(value, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((found for key, v in items if (found := find_non_finite(v, key)) is not None), None)


def _dumps(path: Path | str, obj: Any, indent: int | None = None) -> str:
    try:
        return json.dumps(obj, indent=indent, ensure_ascii=False, allow_nan=False, default=_jsonable)
    except ValueError as err:
        where = find_non_finite(obj)
        if where is None:
            raise
        # a non-finite number here is a broken measurement: a file claiming a value would be a wrong answer
        raise InterpError(f"refusing to write {path}: {where} is not a finite number (NaN or infinity); "
                          "nothing was written. Rerun with --debug to see where it came from") from err


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

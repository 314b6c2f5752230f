"""Exporting an edit: the orthogonalised model (a safetensors HF directory, or a GGUF), the same edit as a
PEFT LoRA adapter, or the steering vector as a llama.cpp control vector.

The GGUF export of a GGUF-born model (embedded models, or a model loaded from a .gguf) rewrites its own
source GGUF: metadata and every untouched tensor are copied byte for byte, still quantised; only the
residual writers that orthogonalisation changed (embedding, attention and MLP outputs) are replaced, as
F16. Any other model is converted whole from its HF weights (`gguf_convert`: F16, the families llama.cpp
and transformers both load). llama.cpp and `transformers` (`gguf_file=`) load either.

Every export is one new directory, written whole or not at all, holding interp-export.json (provenance),
README.md (a model card) and reproduce.json (the command and versions) beside the format's own files.
"""


from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interp.core import embedded
from interp.core.archs import gguf_writer_names
from interp.core.atomic import check_out_dir, check_writable, default_mode
from interp.core.card import ExportInfo, model_card, reproduce
from interp.core.control_vector import control_vector_layer, steering_vector, write_control_vector
from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.gguf_convert import check_convertible, require_convertible, write_gguf
from interp.core.interventions import orthogonalize
from interp.core.lora import lora_adapter, write_lora
from interp.core.model import Model

__all__ = ["EXPORT_FILES", "FORMATS", "FORMAT_FILES", "check_export", "check_export_dir", "export",
           "export_control_vector", "export_gguf", "export_hf", "export_lora", "has_gguf_source",
           "require_gguf_exportable", "source_gguf"]

FORMATS = ("hf", "gguf", "lora", "control-vector")
EXPORT_FILES = ("interp-export.json", "README.md", "reproduce.json")  # beside every format's own files
# what each format cannot be loaded without (hf weights: model.safetensors, or an index and its shards)
FORMAT_FILES = {"hf": ("config.json", "tokenizer_config.json"), "gguf": ("model.gguf",),
                "lora": ("adapter_config.json", "adapter_model.safetensors"), "control-vector": ("control-vector.gguf",)}


def export(model: Model, direction: Direction, out: Path, fmt: str, coef: float = 1.0,
           info: ExportInfo | None = None) -> Path:
    """Write OUT in one of FORMATS; hf and gguf orthogonalise the model's weights in place."""
    if fmt == "hf":
        return export_hf(model, direction, out, info)
    if fmt == "gguf":
        return export_gguf(model, direction, out, info)
    if fmt == "lora":
        return export_lora(model, direction, out, info)
    if fmt == "control-vector":
        return export_control_vector(model, direction, out, coef, info)
    raise InterpError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")


def export_hf(model: Model, direction: Direction, out: Path, info: ExportInfo | None = None) -> Path:
    """Orthogonalise the weights (in place) and write them; the directory appears whole or not at all."""
    return _orthogonalized(model, direction, out, "hf", _write_hf, info)


def export_gguf(model: Model, direction: Direction, out: Path, info: ExportInfo | None = None) -> Path:
    """Orthogonalise (in place) and write OUT/model.gguf: rewritten from the model's source GGUF where it
    has one, else converted from its HF weights."""
    if has_gguf_source(model.spec):
        return _orthogonalized(model, direction, out, "gguf", _write_gguf, info,
                               {"gguf_source": "the source GGUF; untouched tensors copied byte for byte"})
    require_convertible(model.hf, model.tokenizer)
    return _orthogonalized(model, direction, out, "gguf", _convert_gguf, info,
                           {"gguf_source": "converted from the HF weights (matrices F16, norms and biases F32)"})


def export_lora(model: Model, direction: Direction, out: Path, info: ExportInfo | None = None) -> Path:
    """The orthogonalisation as a PEFT LoRA adapter (rank 1 per residual writer); the model is not changed."""
    out = check_export_dir(out)
    adapter = lora_adapter(model, direction)
    if len(adapter.edited) != adapter.declared:
        raise InterpError(f"the adapter covers {len(adapter.edited)} of {adapter.declared} residual writers")
    edit = {"edit": "orthogonalize as LoRA", "rank": 1, "lora_alpha": 1, "writers_edited": len(adapter.edited),
            "writers_declared": adapter.declared, "approximate_writers": list(adapter.approximate),
            "target_modules": len(adapter.target_modules), "target_parameters": len(adapter.target_parameters),
            "modules_to_save": list(adapter.modules_to_save)}
    return _write_dir(model, direction, out, "lora", lambda work: write_lora(adapter, work), edit,
                      model.fingerprint, info)


def export_control_vector(model: Model, direction: Direction, out: Path, coef: float = 1.0,
                          info: ExportInfo | None = None) -> Path:
    """OUT/control-vector.gguf: coef x the raw mean difference at the direction's layer; the model is not changed."""
    out = check_export_dir(out)
    if direction.d_model != model.d_model:
        raise InterpError(f"direction has d_model {direction.d_model}, the model has {model.d_model}")
    layer = control_vector_layer(direction, model.n_layers)
    norm = float(steering_vector(direction, coef).norm())
    edit = {"edit": "steer (add to the residual stream)", "coef": coef, "vector": "raw mean difference x coef",
            "vector_norm": norm, "tensor": f"direction.{layer}",
            "applied": f"output of block {layer} (interp resid_pre of layer {direction.layer})"}
    return _write_dir(model, direction, out, "control-vector",
                      lambda work: write_control_vector(model, direction, coef, work), edit, model.fingerprint, info)


def _write_hf(model: Model, work: Path) -> None:
    model.hf.save_pretrained(work)
    model.tokenizer.save_pretrained(work)


def _convert_gguf(model: Model, work: Path) -> None:
    write_gguf(model.hf, model.tokenizer, work / "model.gguf", model.name)


def _write_gguf(model: Model, work: Path) -> None:
    import gguf

    with tempfile.TemporaryDirectory(dir=work) as scratch:
        reader = gguf.GGUFReader(source_gguf(model.spec, Path(scratch)))
        edited = _edited_tensors(model)
        if "output.weight" not in {t.name for t in reader.tensors}:
            raise InterpError("this GGUF ties its output to token_embd; orthogonalising one would change the "
                              "other: export --format hf instead")
        missing = sorted(set(edited) - {t.name for t in reader.tensors})
        if missing:  # e.g. an old GGUF with one tensor per expert: its experts would ship unedited
            raise InterpError(f"the source GGUF has no tensor {missing[0]} (and {len(missing) - 1} more edited "
                              "writers): export --format hf instead")
        arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
        writer = gguf.GGUFWriter(work / "model.gguf", arch=arch, endianess=reader.endianess)
        for field in reader.fields.values():
            if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue  # written by GGUFWriter itself
            sub_type = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), field.types[0], sub_type=sub_type)
        data = {t.name: edited.get(t.name, t.data) for t in reader.tensors}
        for t in reader.tensors:
            if t.name in edited:
                writer.add_tensor_info(t.name, data[t.name].shape, data[t.name].dtype, data[t.name].nbytes)
            else:
                writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in reader.tensors:
            writer.write_tensor_data(data[t.name])
        writer.close()


def _edited_tensors(model: Model) -> dict:
    """{GGUF name: float16 numpy array} for every residual writer (numpy shape = torch shape)."""
    out = {}
    for module, name in zip(model.writers, gguf_writer_names(model.arch, model.n_layers), strict=True):
        out[f"{name}.weight"] = module.weight.detach().float().cpu().numpy().astype("float16")
        if getattr(module, "bias", None) is not None:
            out[f"{name}.bias"] = module.bias.detach().float().cpu().numpy().astype("float32")
    return out


def has_gguf_source(spec: str) -> bool:
    """Whether the model was loaded from a GGUF (embedded, or a .gguf file) that its GGUF export can rewrite."""
    return spec in embedded.EMBEDDED or (Path(spec).suffix == ".gguf" and Path(spec).expanduser().is_file())


def require_gguf_exportable(spec: str) -> None:
    """Refuse, before the model loads, a local HF directory whose family GGUF conversion does not support
    (a hub id is checked once loaded)."""
    config = Path(spec).expanduser() / "config.json"
    if not has_gguf_source(spec) and config.is_file():
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError, AttributeError) as err:
            raise InterpError(f"cannot read {config}: {err}") from err
        check_convertible(model_type)


def source_gguf(spec: str, scratch: Path) -> Path:
    """The GGUF the model was loaded from (an embedded one is reassembled from its verified parts)."""
    if spec in embedded.EMBEDDED:
        return embedded.assemble_gguf(spec, scratch)
    return Path(spec).expanduser()


def check_export(directory: Path | str) -> dict[str, Any]:
    """An interp export, complete: its provenance (interp-export.json), after checking that the card, the
    recipe and every file its format needs are there. Anything else is refused in one line."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InterpError(f"{directory} is not a directory")
    if not (directory / "interp-export.json").is_file():
        raise InterpError(f"{directory} is not an interp export (no interp-export.json); make one with interp export")
    try:
        provenance = json.loads((directory / "interp-export.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InterpError(f"{directory}/interp-export.json is not valid JSON ({err})") from err
    fmt = provenance.get("format") if isinstance(provenance, dict) else None
    if fmt not in FORMATS or not isinstance(provenance.get("direction"), dict):
        raise InterpError(f"{directory}/interp-export.json has no known format and direction; it was not written "
                          "by interp export")
    missing = [name for name in (*EXPORT_FILES, *FORMAT_FILES[fmt]) if not (directory / name).is_file()]
    missing += _missing_weights(directory) if fmt == "hf" else []
    if missing:
        raise InterpError(f"{directory} is an incomplete {fmt} export: {', '.join(missing)} missing")
    return provenance


def _missing_weights(directory: Path) -> list[str]:
    """An hf export's weights: model.safetensors, or model.safetensors.index.json and every shard it names."""
    if (directory / "model.safetensors").is_file():
        return []
    index = directory / "model.safetensors.index.json"
    try:
        shards = {str(s) for s in json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return ["model.safetensors"]
    return sorted(shard for shard in shards if not (directory / shard).is_file())


def _refuse_non_finite(model: Model) -> None:
    """A NaN anywhere would ship a model that emits garbage: refuse before anything is written."""
    bad = [name for name, p in model.hf.named_parameters() if p.device.type != "meta" and not bool(p.isfinite().all())]
    if bad:
        raise InterpError(f"the edited model has non-finite weights in {len(bad)} tensors (first: {bad[0]}); "
                          "nothing was written: check the direction and the source model")


def check_export_dir(out: Path | str) -> Path:
    """An export goes into a new (or empty) directory that can be written: checked before any work."""
    out = check_out_dir(out)
    if out.exists() and any(out.iterdir()):
        raise InterpError(f"--out {out} is not empty; choose a new directory")
    return check_writable(out)


def _orthogonalized(model: Model, direction: Direction, out: Path, fmt: str, write: Callable[[Model, Path], None],
                    info: ExportInfo | None, extra: dict[str, Any] | None = None) -> Path:
    out = check_export_dir(out)
    if model.backend_started and model.backend_name == "transformer_lens":
        raise InterpError("export needs a model whose modules were not wrapped by a backend; load it afresh")
    source_fingerprint = model.fingerprint  # orthogonalize gives the edited weights a new fingerprint
    done = orthogonalize(model, direction)
    _refuse_non_finite(model)
    edit = {"edit": "orthogonalize", "fingerprint": model.fingerprint, "writers_edited": len(done.edited),
            "writers_declared": done.declared, "approximate_writers": list(done.approximate)} | (extra or {})
    return _write_dir(model, direction, out, fmt, lambda work: write(model, work), edit, source_fingerprint, info)


def _write_dir(model: Model, direction: Direction, out: Path, fmt: str, write: Callable[[Path], None],
               edit: dict[str, Any], source_fingerprint: str, info: ExportInfo | None) -> Path:
    """Write everything into a fresh sibling directory, then rename it to OUT: never a half-written OUT."""
    info = info or ExportInfo()
    provenance = {"format": fmt, "source_fingerprint": source_fingerprint, "direction": direction.meta()} | edit
    card = model_card(model, direction, fmt, edit, info, source_fingerprint)
    recipe = reproduce(model, direction, fmt, edit, info)
    texts = {"interp-export.json": json.dumps(provenance, indent=1, allow_nan=False),
             "reproduce.json": json.dumps(recipe, indent=1, allow_nan=False, ensure_ascii=False, default=str),
             "README.md": card}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:
        raise InterpError(f"cannot create {out}: {err.strerror or err}; choose another --out") from err
    try:
        write(work)
        for name, text in texts.items():
            (work / name).write_text(text + ("" if text.endswith("\n") else "\n"), encoding="utf-8")
        os.chmod(work, default_mode(directory=True))  # mkdtemp makes it 0700; the export is an ordinary directory
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    except OSError as err:
        raise InterpError(f"could not write {out}: {err.strerror or err}; nothing was kept") from err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out

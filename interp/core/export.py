"""Exporting an orthogonalised model: a safetensors HF directory (`from_pretrained`), or a GGUF file.

The GGUF export rewrites the model's own source GGUF (embedded models, or a model loaded from a .gguf):
metadata and every untouched tensor are copied byte for byte, still quantised; only the residual writers
that orthogonalisation changed (embedding, attention and MLP outputs) are replaced, as F16. llama.cpp
and `transformers` (`gguf_file=`) load the result.
"""


from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from interp.core import embedded
from interp.core.archs import gguf_writer_names
from interp.core.atomic import check_out_dir, check_writable, default_mode
from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.interventions import orthogonalize
from interp.core.model import Model

__all__ = ["check_export_dir", "export_gguf", "export_hf", "require_gguf_source", "source_gguf"]


def export_hf(model: Model, direction: Direction, out: Path) -> Path:
    """Orthogonalise the weights (in place) and write them; the directory appears whole or not at all."""
    return _export(model, direction, out, _write_hf)


def export_gguf(model: Model, direction: Direction, out: Path) -> Path:
    """Orthogonalise (in place) and write OUT/model.gguf from the model's source GGUF."""
    require_gguf_source(model.spec)
    return _export(model, direction, out, _write_gguf)


def _write_hf(model: Model, work: Path) -> None:
    model.hf.save_pretrained(work)
    model.tokenizer.save_pretrained(work)


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


def require_gguf_source(spec: str) -> None:
    """GGUF export rewrites the model's own GGUF: refuse, before any work, a model that has none."""
    if spec not in embedded.EMBEDDED and not (Path(spec).suffix == ".gguf" and Path(spec).expanduser().is_file()):
        raise InterpError(f"--format gguf needs an embedded or .gguf model, not {spec!r}: export --format hf "
                          "and convert with llama.cpp's convert_hf_to_gguf.py")


def source_gguf(spec: str, scratch: Path) -> Path:
    """The GGUF the model was loaded from (an embedded one is reassembled from its verified parts)."""
    if spec in embedded.EMBEDDED:
        return embedded.assemble_gguf(spec, scratch)
    return Path(spec).expanduser()


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


def _export(model: Model, direction: Direction, out: Path, write) -> Path:
    out = check_export_dir(out)
    if model.backend_started and model.backend_name == "transformer_lens":
        raise InterpError("export needs a model whose modules were not wrapped by a backend; load it afresh")
    source_fingerprint = model.fingerprint  # orthogonalize gives the edited weights a new fingerprint
    done = orthogonalize(model, direction)
    _refuse_non_finite(model)
    provenance = {"source_fingerprint": source_fingerprint, "fingerprint": model.fingerprint,
                  "direction": direction.meta(), "edit": "orthogonalize", "writers_edited": len(done.edited),
                  "writers_declared": done.declared, "approximate_writers": list(done.approximate)}
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as err:
        raise InterpError(f"cannot create {out}: {err.strerror or err}; choose another --out") from err
    try:
        write(model, work)
        (work / "interp-export.json").write_text(json.dumps(provenance, indent=1, allow_nan=False))
        os.chmod(work, default_mode(directory=True))  # mkdtemp makes it 0700; the export is an ordinary directory
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    except OSError as err:
        raise InterpError(f"could not write {out}: {err.strerror or err}; nothing was kept") from err
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out

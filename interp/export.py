"""Exporting an orthogonalised model as a safetensors HF directory, loadable by `from_pretrained`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from interp.atomic import check_out_dir
from interp.directions import Direction
from interp.errors import InterpError
from interp.interventions import orthogonalize
from interp.models import Model


def export_hf(model: Model, direction: Direction, out: Path) -> Path:
    """Orthogonalise the weights (in place) and write them; the directory appears whole or not at all."""
    out = Path(out)
    check_out_dir(out)
    if out.exists() and any(out.iterdir()):
        raise InterpError(f"--out {out} is not empty; choose a new directory")
    if model._backend is not None and model.backend_name == "transformer_lens":
        raise InterpError("export needs a model whose modules were not wrapped by a backend; load it afresh")
    orthogonalize(model, direction)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.hf.save_pretrained(work)
        model.tokenizer.save_pretrained(work)
        provenance = {"source_fingerprint": model.fingerprint, "direction": direction.meta(), "edit": "orthogonalize"}
        (work / "interp-export.json").write_text(json.dumps(provenance, indent=1))
        if out.exists():
            out.rmdir()
        os.replace(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out

"""Remote execution on NDIF (the National Deep Inference Fabric) through nnsight.

The nnsight backend writes every read, edit and generation as an nnsight trace, so the same traces run
on NDIF's servers when the backend's `remote` is True: nnsight serialises the trace (its source and the
tensors it references, never the model) and the server runs it on its own copy of the hub model. No
weights are downloaded here; the local model is a meta-device skeleton for the module tree.

Needs: a hub id that NDIF serves (https://nnsight.net/status lists them, e.g. meta-llama/Llama-3.1-70B-Instruct),
an API key from https://login.ndif.us in NDIF_API_KEY, and network access. `remote="local"` is nnsight's
dry run of the same path: serialise, deserialise, run in-process (the tests use it).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from interp.core.errors import InterpError
from interp.core.model import Model, wrap_model

__all__ = ["check_ready", "load_remote", "translated_errors"]

KEY_HELP = "set NDIF_API_KEY (a free key from https://login.ndif.us)"


def check_ready(spec: str) -> None:
    """Refuse before any work: remote runs need a hub id and an API key."""
    if spec.count("/") != 1 or Path(spec).expanduser().exists() or spec.startswith((".", "/", "~")):
        raise InterpError(f"--remote runs a hub model on NDIF, so --model must be a hub id such as "
                          f"meta-llama/Llama-3.1-8B-Instruct, not {spec!r}")
    if not os.environ.get("NDIF_API_KEY"):
        raise InterpError(f"--remote needs an NDIF API key: {KEY_HELP}")


@contextmanager
def translated_errors(spec: str) -> Iterator[None]:
    """nnsight, hub and network failures become one line naming what to check."""
    from nnsight.intervention.backends.remote import RemoteError

    try:
        yield
    except RemoteError as err:
        raise InterpError(f"NDIF request for {spec} failed: {str(err).splitlines()[0]}") from err
    except (OSError, ConnectionError) as err:  # httpx and huggingface_hub errors derive from these
        raise InterpError(f"cannot reach the Hugging Face Hub or NDIF for {spec} (network?): "
                          f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err


def load_remote(spec: str) -> Model:
    """A Model whose nnsight backend sends every trace to NDIF. Only the config and tokenizer are fetched."""
    check_ready(spec)
    from nnsight import LanguageModel

    from interp.core.backends.nnsight import NNsightBackend

    with translated_errors(spec), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = LanguageModel(spec, dispatch=False)  # meta weights: the module tree, no download
        lm.to_model_key()  # resolves the id on the hub now, so a typo fails before any work
    return wrap_model(lm._model, lm.tokenizer, spec=spec, name=spec.split("/")[-1], backend="nnsight",
                      fingerprint=f"remote:{spec}", backend_factory=lambda m: NNsightBackend(m, lm=lm, remote=True))

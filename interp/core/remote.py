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

__all__ = ["DEFAULT_HOST", "check_ready", "load_remote", "ndif_host", "translated_errors"]

KEY_HELP = "set NDIF_API_KEY (a free key from https://login.ndif.us)"


DEFAULT_HOST = "https://api.ndif.us"


def check_ready(spec: str, allow_other_host: bool = False) -> None:
    """Refuse before any work: remote runs need a hub id, an API key, and NDIF's own host unless the user
    says otherwise (nnsight unpickles the host's responses, so the host can run code here)."""
    if spec.count("/") != 1 or Path(spec).expanduser().exists() or spec.startswith((".", "/", "~")):
        raise InterpError(f"--remote runs a hub model on NDIF, so --model must be a hub id such as "
                          f"meta-llama/Llama-3.1-8B-Instruct, not {spec!r}")
    if not os.environ.get("NDIF_API_KEY"):
        raise InterpError(f"--remote needs an NDIF API key: {KEY_HELP}")
    host = ndif_host()
    if host.rstrip("/") != DEFAULT_HOST and not allow_other_host:
        raise InterpError(f"NDIF host is {host}, not {DEFAULT_HOST}: nnsight unpickles the host's replies, so that "
                          "server could run code here; pass --allow-ndif-host if you trust it")


def ndif_host() -> str:
    """The host nnsight will send traces to ($NDIF_HOST or nnsight's config)."""
    from nnsight import CONFIG

    return os.environ.get("NDIF_HOST") or CONFIG.API.HOST


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


def load_remote(spec: str, allow_other_host: bool = False) -> Model:
    """A Model whose nnsight backend sends every trace to NDIF. Only the config and tokenizer are fetched.

    Security: nnsight unpickles NDIF's responses (torch.load with weights_only=False); whoever controls the
    host can run code on this machine. Only NDIF's default host is accepted unless `allow_other_host`."""
    check_ready(spec, allow_other_host)
    from nnsight import LanguageModel

    from interp.core.backends.nnsight import NNsightBackend

    with translated_errors(spec), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = LanguageModel(spec, dispatch=False)  # meta weights: the module tree, no download
        lm.to_model_key()  # resolves the id on the hub now, so a typo fails before any work
    return wrap_model(lm._model, lm.tokenizer, spec=spec, name=spec.split("/")[-1], backend="nnsight",
                      fingerprint=f"remote:{spec}", backend_factory=lambda m: NNsightBackend(m, lm=lm, remote=True))

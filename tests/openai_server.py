"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for testing "openai:URL#MODEL" judges.

The server is `transformers serve` (transformers 5.24, already a dependency), run as a subprocess of the
test's own Python, serving a local HF directory (the embedded Qwen's dequantised cache) on CPU. No mocks.

Extra packages it needs (transformers' `serving` extra, minus what interp already pulls in):

    pip install fastapi==0.165.0 uvicorn==0.54.0 openai==3.57.0

(equivalently `transformers[serving]`; pydantic, rich, accelerate and torch come with interp.)

Measured on the dev machine (2 CPU cores, no GPU; the CPUs were shared with other jobs at the time,
so the latencies are pessimistic):
  - install: ~6 s on top of interp's environment (16 s into a bare venv, no pip cache).
  - startup: 13-15 s from spawn to /health answering, for the 0.5B Qwen HF dir in float32 (the model
    is preloaded before the port opens, so "answers" means "ready to generate").
  - one greedy chat completion, max_tokens=8 (~40 prompt tokens): 5-10 s under that load
    (in-process `model.generate` took the same, so the server adds next to nothing).
  Building the HF dir itself (interp.core.model.embedded_dir("embedded"), once per cache) is not counted.

Request/response (greedy, temperature 0):
    POST /v1/chat/completions {"model": MODEL, "messages": [{"role": "user",
        "content": "What is the capital of France? Answer in one word."}], "temperature": 0, "max_tokens": 8}
    -> {"choices": [{"finish_reason": "stop", "index": 0,
                     "message": {"content": "Paris", "role": "assistant"}}], "model": MODEL, ...}

The server is pinned to one model: a request must name exactly MODEL (the string yielded) or no model
at all; any other name gets HTTP 400. temperature 0 maps to do_sample=False (greedy).

Usage:
    with serve_openai(str(embedded_dir("embedded"))) as (base_url, model):
        judge = f"openai:{base_url}#{model}"
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

SERVER_PACKAGES = ("fastapi", "uvicorn", "openai")  # what `transformers serve` checks beyond transformers
PIP_INSTALL = "pip install fastapi==0.165.0 uvicorn==0.54.0 openai==3.57.0"


def serve_available() -> bool:
    """True when this Python can run `transformers serve` (use for pytest skips)."""
    return all(importlib.util.find_spec(name) is not None for name in ("transformers", *SERVER_PACKAGES))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, n_chars: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no server log>"
    return text[-n_chars:]


def _get_json(url: str, timeout: float = 2.0) -> object | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                return None
            return json.loads(response.read().decode())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _stop(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # own session: reaches any child the server started
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def serve_openai(
    model_dir_or_gguf: str,
    port: int | None = None,
    *,
    startup_timeout_s: float = 300.0,
    python: str | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[tuple[str, str]]:
    """Run `transformers serve` on 127.0.0.1 for one local model; yield (base_url, model_name).

    model_dir_or_gguf: an HF model directory (e.g. interp.core.model.embedded_dir("embedded")). A .gguf
    file is refused: `transformers serve` 5.24 dies loading one (its config has architectures=None,
    TypeError in ModelManager._load_model), so dequantise it first as interp's loader does.
    base_url ends in /v1; model_name is the exact string the server is pinned to (send it as "model",
    or omit "model").
    python: the interpreter to run the server with (default: this one; it needs SERVER_PACKAGES).
    """
    path = Path(model_dir_or_gguf).expanduser().resolve()
    if path.suffix == ".gguf":
        raise ValueError(
            f"{path}: transformers serve 5.24 cannot load a GGUF (config.architectures is None); "
            "pass the dequantised HF directory instead, e.g. interp.core.model.embedded_dir('embedded')"
        )
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not an HF model directory (no config.json)")
    model_name = str(path)
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1", PYTHONUNBUFFERED="1"
    )
    command = [
        python or sys.executable, "-m", "transformers.cli.transformers", "serve", model_name,
        "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", *extra_args,
    ]  # fmt: skip
    log_dir = tempfile.mkdtemp(prefix="interp-openai-server-")
    log_path = Path(log_dir) / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the OpenAI-compatible server exited with code {proc.returncode} before answering "
                    f"(needs: {PIP_INSTALL})\ncommand: {' '.join(command)}\n--- server log tail ---\n{_tail(log_path)}"
                )
            # the model is loaded before uvicorn binds, so /health answering means ready to generate
            health = _get_json(f"{base}/health")
            if isinstance(health, dict) and health.get("status") == "ok":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the OpenAI-compatible server did not answer on {base} within {startup_timeout_s:.0f} s"
                    f"\ncommand: {' '.join(command)}\n--- server log tail ---\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        yield f"{base}/v1", model_name
    finally:
        _stop(proc)
        with contextlib.suppress(OSError):
            log_path.unlink()
            os.rmdir(log_dir)


def chat(base_url: str, model: str, content: str, max_tokens: int = 8, timeout: float = 300.0) -> dict:
    """One greedy POST /v1/chat/completions with urllib; returns the decoded JSON response."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode())


if __name__ == "__main__":  # python tests/openai_server.py HF_MODEL_DIR ["question"]
    target = sys.argv[1]
    question = sys.argv[2] if len(sys.argv) > 2 else "What is the capital of France? Answer in one word."
    t0 = time.monotonic()
    with serve_openai(target) as (url, name):
        t1 = time.monotonic()
        print(f"server ready at {url} after {t1 - t0:.1f} s; model {name!r}")
        reply = chat(url, name, question)
        print(f"chat completion in {time.monotonic() - t1:.1f} s:")
        print(json.dumps(reply, indent=1))
    print(f"stopped; total {time.monotonic() - t0:.1f} s")

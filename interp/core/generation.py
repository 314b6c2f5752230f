"""Batched greedy generation: length-bucketed, KV-cached, with an optional early stop (`stop=`: a
predicate on the decoded text, e.g. the judge's "the verdict is certain").

Unedited (baseline) completions are cached on disk, keyed by model fingerprint, dtype, backend, token
budget and the templated prompt's hash, so a rerun of `interp run` skips the labelling it already did. Set
INTERP_NO_COMPLETION_CACHE=1 to regenerate everything.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from interp.core.atomic import atomic_write_json
from interp.core.embedded import cache_root
from interp.core.model import Model
from interp.core.progress import advance, progress_bar

__all__ = ["TOKENS_PER_BATCH", "CompletionCache", "Stop", "TextStop", "complete", "completion_cache_enabled", "length_batches"]

Stop = Callable[[str], bool]  # decoded text so far -> True once more tokens cannot change what we want


class TextStop:
    """HF stopping criterion: a sequence is done at EOS or once `stop(decoded text)` is true."""

    def __init__(self, model: Model, prompt_len: int, stop: Stop, check_every: int = 4):
        self.tokenizer = model.tokenizer
        self.prompt_len = prompt_len
        self.stop = stop
        self.check_every = check_every

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        new = input_ids[:, self.prompt_len :]
        done = torch.zeros(new.shape[0], dtype=torch.bool, device=input_ids.device)
        if new.shape[1] % self.check_every:
            return done
        for i, text in enumerate(self.tokenizer.batch_decode(new, skip_special_tokens=True)):
            done[i] = self.stop(text)
        return done


TOKENS_PER_BATCH = 16384  # rows x padded length: bounds attention memory when prompts are long


def length_batches(model: Model, prompts: Sequence[str], batch_size: int,
                   lengths: Sequence[int] | None = None) -> Iterator[list[int]]:
    """Indices grouped by token length so a batch carries little padding, at most `batch_size` rows and
    TOKENS_PER_BATCH padded tokens (long prompts go in smaller batches); order restored by caller.
    `lengths`: the prompts' templated token counts, when the caller has them already."""
    lengths = model.prompt_lengths(prompts) if lengths is None else lengths
    batch: list[int] = []
    for i in sorted(range(len(prompts)), key=lambda i: (lengths[i], i)):
        if batch and (len(batch) == batch_size or (len(batch) + 1) * lengths[i] > TOKENS_PER_BATCH):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def complete(
    model: Model,
    prompts: Sequence[str],
    max_new_tokens: int = 48,
    batch_size: int = 32,  # decoding is bound by reading the weights: 32 rows share a read (1.5x tok/s of 16)
    stop: Stop | None = None,
    description: str = "generating",
    show_progress: bool = True,
    stop_key: str = "",
) -> list[str]:
    """Greedy completions for prompts, in the order given (with the model's active edits applied).
    `stop_key` names what `stop` tests (e.g. the judge's markers): cached completions that stopped under
    another test are not reused."""
    from transformers import StoppingCriteriaList

    lengths = model.prompt_lengths(prompts)
    model.check_prompt_lengths(prompts, lengths)  # before any work, not after an hour of it
    cache = CompletionCache.for_model(model, max_new_tokens, stop is not None, stop_key)
    chats = [model.chat_text(p) for p in prompts] if cache else []
    texts: list[str | None] = [cache.get(c) for c in chats] if cache else [None] * len(prompts)
    todo = [i for i, t in enumerate(texts) if t is None]
    with progress_bar(description, len(prompts), show=show_progress) as bar:
        task = bar.add_task(description, total=len(prompts), rate="-", visible=show_progress)
        advance(bar, task, len(prompts) - len(todo))
        for batch_indices in length_batches(model, [prompts[i] for i in todo], batch_size, [lengths[i] for i in todo]):
            indices = [todo[j] for j in batch_indices]
            batch = model.format_chat([prompts[i] for i in indices])
            stops = StoppingCriteriaList([TextStop(model, batch.input_ids.shape[1], stop)]) if stop else None
            new_tokens = model.backend.generate(batch, max_new_tokens, stopping_criteria=stops)
            decoded = model.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text in zip(indices, decoded, strict=True):
                texts[i] = text.strip()
            if cache:  # every batch: an interrupted call keeps what it finished
                cache.put({chats[i]: texts[i] for i in indices})
            advance(bar, task, len(indices))
    return texts


def completion_cache_enabled() -> bool:
    return not os.environ.get("INTERP_NO_COMPLETION_CACHE")


class CompletionCache:
    """Greedy completions on disk: {sha256(templated prompt): text}, one JSON file per model, budget and
    set of active edits. Unedited completions, and those under edits that carry a `key` (ablation and
    steering by a given vector), are cached; an edit without a key turns the cache off."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries: dict[str, str] = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            self.entries = {}  # an unreadable cache is regenerated, never trusted

    @classmethod
    def for_model(cls, model: Model, max_new_tokens: int, early_stop: bool, stop_key: str = "") -> CompletionCache | None:
        if not completion_cache_enabled() or any(e.key is None for e in model.edits):
            return None
        stopping = (f"stop-{stop_key}" if stop_key else "stop") if early_stop else "full"
        key = f"{model.fingerprint[:16]}-{model.dtype_name}-{model.backend_name}-{max_new_tokens}-{stopping}"
        if model.edits:
            key += "-edit-" + hashlib.sha256("|".join(e.key for e in model.edits).encode()).hexdigest()[:16]
        return cls(cache_root() / "completions" / f"{key}.json")

    @staticmethod
    def _hash(chat_text: str) -> str:
        return hashlib.sha256(chat_text.encode()).hexdigest()

    def get(self, chat_text: str) -> str | None:
        return self.entries.get(self._hash(chat_text))

    def put(self, new: dict[str, str]) -> None:
        fresh = CompletionCache(self.path).entries  # another process may have added entries meanwhile
        fresh.update({self._hash(k): v for k, v in new.items()})
        atomic_write_json(self.path, fresh)

"""lm-eval (EleutherAI's lm-evaluation-harness, the field's standard for capability tasks) on an interp model.

`InterpLM` answers lm-eval's three request types through interp's backend, so every forward pass runs
under the model's active edits: `with ablate(model, d): run_lm_eval(model, ["interp_capability"])`.

Context and continuation are tokenised separately, without special tokens, as interp's own measurements
do (lm-eval's HF model instead tokenises them together and moves the context's trailing whitespace into
the continuation, which would move a chat template's closing newline into the scored answer). So
`loglikelihood(model.chat_text(q), c)` is exactly `-continuation_nll(model, [q], [c])`.

lm-eval is an optional dependency (`pip install 'interp[lmeval]'`); importing this module without it
raises one InterpError line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from interp.core.errors import InterpError
from interp.core.generation import TOKENS_PER_BATCH, TextStop
from interp.core.measure import left_pad, token_scores
from interp.core.model import Model

try:
    from lm_eval.api.model import LM
except ModuleNotFoundError as err:
    if err.name is None or err.name.split(".")[0] != "lm_eval":
        raise
    raise InterpError("lm-eval is not installed: pip install 'interp[lmeval]'") from err

__all__ = ["LOGIT_TOKENS_PER_BATCH", "TASKS_DIR", "InterpLM", "TaskSet", "find_tasks", "run_lm_eval", "task_metrics"]

TASKS_DIR = Path(__file__).resolve().parents[1] / "data" / "lm_eval"  # interp's own tasks (interp_capability)
LOGIT_TOKENS_PER_BATCH = 4096  # rows x padded length when every position's logits are kept ([seq, vocab] each)


def _batches(lengths: Sequence[int], batch_size: int, budget: int = LOGIT_TOKENS_PER_BATCH) -> Iterator[list[int]]:
    """Indices, longest first (an out-of-memory shows on the first batch, not the last), at most
    `batch_size` rows and `budget` padded tokens a batch; callers restore the order."""
    batch: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        if batch and (len(batch) == batch_size or (len(batch) + 1) * lengths[batch[0]] > budget):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


class InterpLM(LM):
    """An lm-eval model over an interp `Model`; greedy decoding only, contexts left-truncated to
    `model.max_prompt_tokens` as lm-eval's HF model truncates to its max length."""

    def __init__(self, model: Model, batch_size: int = 16):
        super().__init__()
        if batch_size < 1:
            raise InterpError(f"batch size must be at least 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self._device = model.device

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    @property
    def max_length(self) -> int:
        return self.model.max_prompt_tokens

    @property
    def prefix_token_id(self) -> int:
        """What an empty context is conditioned on: BOS, else EOS (lm-eval's convention)."""
        bos = self.tokenizer.bos_token_id
        return int(bos if bos is not None else self.tokenizer.eos_token_id)

    @property
    def tokenizer_name(self) -> str:
        return self.model.name.replace("/", "__")

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(chat_history, tokenize=False, add_generation_prompt=add_generation_prompt,
                                                  continue_final_message=not add_generation_prompt,
                                                  **self.model.template_kwargs)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.tokenizer.chat_template if chat_template else None

    def get_model_info(self) -> dict[str, Any]:
        """Recorded in lm-eval's results: the model and the edits active when it ran."""
        return self.model.describe() | {"edits": [e.key or "unnamed edit" for e in self.model.edits]}

    def score(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(log-likelihood, greedy) per (context ids, continuation ids), in batches, under the active edits."""
        limit = self.max_length + 1  # the last token is only predicted, never fed
        for _, tail in pairs:
            if len(tail) >= limit:
                raise InterpError(f"a continuation of {len(tail)} tokens exceeds the model's {self.max_length}-token "
                                  "limit (max_prompt_tokens); raise INTERP_MAX_PROMPT_TOKENS if memory allows")
        fitted = [((head + tail)[-limit:][: -len(tail)] if tail else head[-limit:], tail) for head, tail in pairs]
        out: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
        for indices in _batches([len(h) + len(t) for h, t in fitted], self.batch_size):
            for i, (nll, greedy) in zip(indices, token_scores(self.model, [fitted[i] for i in indices]), strict=True):
                out[i] = (-nll, greedy)
        return out

    def loglikelihood(self, requests: list[Any]) -> list[tuple[float, bool]]:
        pairs = []
        for context, continuation in (r.args for r in requests):
            head, tail = self.encode(context), self.encode(continuation)
            pairs.append((head or [self.prefix_token_id], tail))
        return self.score(pairs)

    def loglikelihood_rolling(self, requests: list[Any]) -> list[float]:
        """Each text's whole log-likelihood after the prefix token, in windows of at most `max_length`
        tokens that each predict new tokens only (lm-eval's rolling windows)."""
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        windows: list[tuple[list[int], list[int]]] = []
        owner: list[int] = []
        for n, (text,) in enumerate(r.args for r in requests):
            for context, pred in map(make_disjoint_window, get_rolling_token_windows(
                    token_list=self.encode(text), prefix_token=self.prefix_token_id, max_seq_len=self.max_length,
                    context_len=1)):
                windows.append((list(context), list(pred)))
                owner.append(n)
        totals = [0.0] * len(requests)
        for n, (logprob, _) in zip(owner, self.score(windows), strict=True):
            totals[n] += logprob
        return totals

    def generate_until(self, requests: list[Any]) -> list[str]:
        """Greedy continuations, each cut at the first of its `until` strings (EOS always ends one)."""
        out: list[str] = [""] * len(requests)
        groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
        for i, (_, kwargs) in enumerate(r.args for r in requests):
            kwargs = dict(kwargs or {})
            if kwargs.get("do_sample"):
                raise InterpError("interp decodes greedily, but the task asks for sampling (do_sample: true); "
                                  "override it with gen_kwargs={'do_sample': False}")
            until = kwargs.get("until") or []
            until = (until,) if isinstance(until, str) else tuple(until)
            groups.setdefault((until, int(kwargs.get("max_gen_toks", 256))), []).append(i)
        for (until, max_new), members in groups.items():
            keep = max(1, self.max_length - max_new)
            heads = [self.encode(requests[i].args[0])[-keep:] or [self.prefix_token_id] for i in members]
            for indices in _batches([len(h) for h in heads], self.batch_size, budget=TOKENS_PER_BATCH):
                texts = self._greedy([heads[j] for j in indices], until, max_new)
                for j, text in zip(indices, texts, strict=True):
                    out[members[j]] = text
        return out

    def _greedy(self, heads: list[list[int]], until: tuple[str, ...], max_new: int) -> list[str]:
        from transformers import StoppingCriteriaList

        batch = left_pad(heads, self.tokenizer.pad_token_id).to(self.model.device)
        stops = StoppingCriteriaList([TextStop(self.model, batch.input_ids.shape[1],
                                               lambda text: any(u in text for u in until))]) if until else None
        with torch.no_grad():
            new_tokens = self.model.backend.generate(batch, max_new, stopping_criteria=stops)  # [batch, new]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [min((text.split(u)[0] for u in until), key=len) if until else text for text in texts]


@dataclass(frozen=True)
class TaskSet:
    """lm-eval tasks found before any model loads: the manager that indexed them and what to evaluate
    (a name, or the task's config with its local data files made absolute)."""

    names: tuple[str, ...]
    manager: Any  # lm_eval.tasks.TaskManager
    specs: tuple[str | dict[str, Any], ...]


def find_tasks(tasks: Sequence[str], include_path: str | Path | Sequence[str | Path] | None = None) -> TaskSet:
    """Resolve task names against interp's own tasks, the include path(s), then lm-eval's built-in tasks
    (indexing those takes ~25 s, so it happens only when a name is not found locally).

    In a task YAML from interp's folder or an include path, a relative local `data_files` path is read
    against the YAML's folder (lm-eval itself reads it against the working directory): that is how the
    shipped `interp_capability` task finds `interp/data/capability.jsonl` from anywhere."""
    from lm_eval.tasks import TaskManager

    names = tuple(dict.fromkeys(t.strip() for t in tasks if t.strip()))
    if not names:
        raise InterpError("no lm-eval task given: name at least one (e.g. interp_capability)")
    paths = [include_path] if isinstance(include_path, str | Path) else list(include_path or [])
    for path in map(Path, paths):
        if not path.exists():
            raise InterpError(f"include path {path} does not exist: give a folder (or YAML file) of lm-eval task configs")
    roots = [TASKS_DIR, *map(Path, paths)]
    manager = TaskManager(include_path=[str(r) for r in roots], include_defaults=False)
    if not set(names) <= set(manager.all_tasks):
        manager = TaskManager(include_path=[str(r) for r in roots])
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise InterpError(f"unknown lm-eval task(s) {', '.join(unknown)}: not built into lm-eval, not interp's own "
                          "(interp_capability) and not in an include path; `lm-eval ls tasks` lists the built-in ones")
    return TaskSet(names, manager, tuple(_spec(manager, name, roots) for name in names))


def _spec(manager: Any, name: str, roots: list[Path]) -> str | dict[str, Any]:
    """The task's name, or, for a local YAML task with relative data files, its config with them made
    absolute against the YAML's folder."""
    from lm_eval.tasks._index import Kind
    from lm_eval.tasks._yaml_loader import load_yaml  # what lm-eval's own factory reads a task with (0.4.13)

    entry = manager.task_index[name]
    path = None if entry.yaml_path is None else Path(entry.yaml_path).resolve()
    if entry.kind is not Kind.TASK or path is None or not any(path.is_relative_to(r.resolve()) for r in roots):
        return name
    config = load_yaml(path, resolve_func=True)
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if files is None:
        return name

    def absolute(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: absolute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [absolute(v) for v in value]
        if isinstance(value, str) and "://" not in value and not Path(value).expanduser().is_absolute():
            return str((path.parent / value).resolve())
        return value

    config["dataset_kwargs"] = dict(config["dataset_kwargs"], data_files=absolute(files))
    return config


def run_lm_eval(model: Model, tasks: Sequence[str] | TaskSet, include_path: str | Path | Sequence[str | Path] | None = None,
                limit: int | float | None = None, num_fewshot: int | None = None, batch_size: int = 16,
                chat: bool = True, log_samples: bool = False, bootstrap_iters: int = 100000) -> dict[str, Any]:
    """Run lm-eval tasks on the model under its active edits; lm-eval's results dict (`results[task]` holds
    the metrics, e.g. `acc,none`; `config` records the model and the edits).

    chat: put each prompt through the model's chat template (interp's models are chat models; lm-eval's
    `apply_chat_template`). limit: the first N documents of each task (a fraction if < 1)."""
    from lm_eval import simple_evaluate

    if limit is not None and limit <= 0:
        raise InterpError(f"limit must be positive, got {limit}")
    found = tasks if isinstance(tasks, TaskSet) else find_tasks(tasks, include_path)
    try:
        results = simple_evaluate(model=InterpLM(model, batch_size), tasks=list(found.specs), task_manager=found.manager,
                                  limit=limit, num_fewshot=num_fewshot, apply_chat_template=chat,
                                  log_samples=log_samples, bootstrap_iters=bootstrap_iters)
    except OSError as err:  # a task's data: a missing local file, or a hub data set with no network and no cache
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        raise InterpError(f"lm-eval could not read a task's data ({first}): a local task's data_files must exist; a "
                          "built-in task downloads its data set from the Hugging Face hub, or reads the cache with "
                          "HF_DATASETS_OFFLINE=1") from err
    if results is None:  # lm-eval returns None only on a non-zero rank of a distributed run
        raise InterpError("lm-eval returned no results (a distributed run's non-zero rank?)")
    return dict(results)


def task_metrics(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per task (and group) in lm-eval's results: {metric: value}, with `METRIC_stderr` beside each (None
    where lm-eval computed none), a filter other than the default named as `metric (filter)`, and `n`, the
    number of documents scored."""
    table: dict[str, dict[str, float | None]] = {}
    for task, row in results["results"].items():
        values: dict[str, float | None] = {}
        for key, value in row.items():
            metric, _, applied = key.partition(",")
            if not applied:  # alias, name, sample_len: labels, not metrics
                continue
            base = metric.removesuffix("_stderr")
            name = (base if applied == "none" else f"{base} ({applied})") + metric[len(base):]
            values[name] = float(value) if isinstance(value, int | float) else None
        effective = (results.get("n-samples") or {}).get(task, {}).get("effective")
        table[task] = values | ({"n": float(effective)} if effective is not None else {})
    return table

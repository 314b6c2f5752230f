"""The capability probe: multiple-choice questions (arithmetic, everyday reasoning, general knowledge; English
and Chinese; `interp/data/capability.jsonl`), scored without generation, so an edit's damage to what the
model can still do is measured in a few forward passes.

Schema, one object a line: {"id": str, "lang": "en"|"zh", "category": "arithmetic"|"reasoning"|"knowledge",
"question": str, "choices": [4 distinct str], "answer": int (0-3)}. Loading is strict: an unknown key, a
missing one, a duplicate id or an answer out of range is one InterpError naming the file and line.

Scoring: the question and its choices go through the model's chat template as the user turn; each choice's
text is then the teacher-forced reply, and the choice with the highest *summed* log-probability is the
model's answer. The sum, not the mean per token: the choices are listed in the prompt, so after a choice's
first token the rest is a near-certain copy; a mean would dilute that first-token decision by the choice's
length and let a long, unlikely choice beat a short, likely one. The sum is the log-probability of the
model writing exactly that reply, the quantity greedy decoding ranks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from interp.behaviour.prompts import json_lines
from interp.core.errors import InterpError

if TYPE_CHECKING:  # the records import CapabilityScore; figures and reports must load without a model
    from interp.core.model import Model

__all__ = ["CATEGORIES", "CapabilityItem", "CapabilityScore", "capability_accuracy", "capability_subset",
           "check_item", "choice_logprobs", "load_capability"]

CATEGORIES = ("arithmetic", "reasoning", "knowledge")
N_CHOICES = 4
_KEYS = frozenset({"id", "lang", "category", "question", "choices", "answer"})
_FRAME = {"en": ("{question}\n\nChoices:\n{choices}\n\nReply with the correct choice only.", "- {}"),
          "zh": ("{question}\n\n选项：\n{choices}\n\n请只回答正确的选项。", "- {}")}
_SEED = 20240601


@dataclass(frozen=True)
class CapabilityItem:
    id: str
    lang: str
    category: str
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices

    @property
    def prompt(self) -> str:
        """The user turn: the question and its choices, one a line, in the item's language."""
        frame, line = _FRAME[self.lang]
        return frame.format(question=self.question, choices="\n".join(line.format(c) for c in self.choices))


@dataclass(frozen=True)
class CapabilityScore:
    """Share of items whose correct choice the model ranks first, overall and per language."""

    accuracy: float
    n: int
    by_lang: dict[str, float]


def check_item(obj: object, where: str) -> CapabilityItem:
    if not isinstance(obj, dict):
        raise InterpError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if obj.keys() != _KEYS:
        missing, extra = sorted(_KEYS - obj.keys()), sorted(obj.keys() - _KEYS)
        raise InterpError(f"{where}: " + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                                   + ([f"unknown {', '.join(extra)}"] if extra else [])))
    for key in ("id", "question"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise InterpError(f"{where}: {key!r} must be a non-empty string")
    if obj["lang"] not in _FRAME:
        raise InterpError(f"{where}: 'lang' must be one of {', '.join(_FRAME)}, got {obj['lang']!r:.40}")
    if obj["category"] not in CATEGORIES:
        raise InterpError(f"{where}: 'category' must be one of {', '.join(CATEGORIES)}, got {obj['category']!r:.40}")
    choices = obj["choices"]
    if (not isinstance(choices, list) or len(choices) != N_CHOICES
            or not all(isinstance(c, str) and c.strip() for c in choices)):
        raise InterpError(f"{where}: 'choices' must be a list of {N_CHOICES} non-empty strings")
    if len({c.strip() for c in choices}) != N_CHOICES:
        raise InterpError(f"{where}: 'choices' repeat a choice")
    answer = obj["answer"]
    if type(answer) is not int or not 0 <= answer < N_CHOICES:
        raise InterpError(f"{where}: 'answer' must be an integer 0-{N_CHOICES - 1}, got {answer!r:.40}")
    return CapabilityItem(obj["id"].strip(), obj["lang"], obj["category"], obj["question"].strip(),
                          tuple(c.strip() for c in choices), answer)


def load_capability(path: str | Path | None = None) -> tuple[CapabilityItem, ...]:
    """The built-in probe (interp/data/capability.jsonl), or a file of the same schema."""
    if path is None:
        source, data = "interp/data/capability.jsonl", resources.files("interp.data").joinpath("capability.jsonl").read_bytes()
    else:
        source = str(path)
        try:
            data = Path(path).expanduser().read_bytes()
        except OSError as err:
            raise InterpError(f"{source}: cannot read the capability file ({err.strerror or err})") from err
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InterpError(f"{source}: not UTF-8 text (byte {err.start})") from err
    items = [check_item(obj, where) for where, obj in json_lines(text, source, list_hint="one JSON object a line")]
    if not items:
        raise InterpError(f"{source}: no capability items in the file")
    seen: dict[str, int] = {}
    for number, item in enumerate(items, start=1):
        if item.id in seen:
            raise InterpError(f"{source}: duplicate id {item.id!r} (items {seen[item.id]} and {number})")
        seen[item.id] = number
    return tuple(items)


def capability_subset(items: Sequence[CapabilityItem], n: int) -> tuple[CapabilityItem, ...]:
    """`n` items (all if fewer), drawn in turn from each language x category stratum after a seeded shuffle,
    so a small probe stays balanced; in file order."""
    strata: dict[tuple[str, str], list[int]] = {}
    for index, item in enumerate(items):
        strata.setdefault((item.lang, item.category), []).append(index)
    for key, members in strata.items():
        random.Random(f"{_SEED}:{key[0]}:{key[1]}").shuffle(members)
    chosen: list[int] = []
    queues = [strata[key] for key in sorted(strata)]
    while len(chosen) < min(n, len(items)):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return tuple(items[i] for i in sorted(chosen))


def choice_logprobs(model: Model, items: Sequence[CapabilityItem], batch_size: int = 16,
                    description: str | None = None) -> list[list[float]]:
    """Per item: each choice's summed log-probability as the reply to the item's prompt (active edits apply).
    `description`: show a progress bar."""
    from interp.core.measure import continuation_nll

    prompts = [item.prompt for item in items for _ in item.choices]
    replies = [choice for item in items for choice in item.choices]
    nll = continuation_nll(model, prompts, replies, batch_size=batch_size, description=description)
    out, at = [], 0
    for item in items:
        out.append([-summed for summed, _ in nll[at : at + len(item.choices)]])
        at += len(item.choices)
    return out


def capability_accuracy(model: Model, items: Sequence[CapabilityItem], batch_size: int = 16,
                        description: str | None = None) -> CapabilityScore:
    """Accuracy on the probe under the model's active edits (`with ablate(model, d): capability_accuracy(...)`).
    `description`: show a progress bar."""
    if not items:
        raise InterpError("no capability items to score")
    scores = choice_logprobs(model, items, batch_size, description)
    right = [max(range(len(s)), key=s.__getitem__) == item.answer for item, s in zip(items, scores, strict=True)]
    by_lang = {lang: [r for r, item in zip(right, items, strict=True) if item.lang == lang]
               for lang in sorted({item.lang for item in items})}
    return CapabilityScore(sum(right) / len(right), len(right), {k: sum(v) / len(v) for k, v in by_lang.items()})

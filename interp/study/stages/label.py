"""Label behaviour: every prompt of every set and split, generated and judged (train and validation at
the labelling budget, test at the evaluation budget)."""

from __future__ import annotations

from dataclasses import replace

from interp.behaviour import prompts as P
from interp.behaviour.thinking import empty_thought_probability, thinks
from interp.core.model import Model
from interp.study.config import RunConfig
from interp.study.measures import generate_rows
from interp.study.records import LabelledRow

__all__ = ["load_sets", "label_sets"]


def load_sets(config: RunConfig, names: tuple[str, ...] = P.BUILTIN,
              splits: tuple[str, ...] = P.SPLITS) -> dict[str, dict[str, P.PromptSet]]:
    sets: dict[str, dict[str, P.PromptSet]] = {}
    for name in names:
        sets[name] = {}
        for split in splits:
            chosen = P.load(name, split)
            sets[name][split] = chosen.head(config.per_split) if config.per_split else chosen
    return sets


def label_sets(model: Model, sets: dict[str, dict[str, P.PromptSet]], config: RunConfig) -> list[LabelledRow]:
    rows: list[LabelledRow] = []
    for name, by_split in sets.items():
        for split, chosen in by_split.items():
            # test completions are the evaluation's baselines: long-form, like everything they are compared with
            budget = config.eval_tokens if split == "test" else config.label_tokens
            labelled = generate_rows(model, chosen.items, None, budget, description=f"label {name}/{split}",
                                     set_name=name, split=split)
            if thinks(model):  # reasoning models: how likely the thought is skipped, per prompt
                p_empty = empty_thought_probability(model, [r.prompt for r in labelled])
                labelled = [replace(r, p_empty_thought=p) for r, p in zip(labelled, p_empty, strict=True)]
            rows += labelled
    return rows


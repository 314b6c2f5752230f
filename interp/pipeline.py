"""The stages of `interp run` (ordered and checkpointed by interp.runner): label behaviour, extract and
select both directions, evaluate the interventions.

Contrasts are defined by observed behaviour (the CONTRASTS table): refusal = harmful prompts the model
refuses vs harmless ones it answers; censorship = prompts of the political pool (sensitive and matched
controls) the model suppresses vs those it answers, so topic sits on both sides and behaviour alone
separates them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import torch

from interp import directions as dirs
from interp import prompts as P
from interp.activations import collect
from interp.atomic import atomic_write_json, atomic_write_jsonl
from interp.errors import InterpError
from interp.evaluate import (
    continuation_ce,
    generate_rows,
    kl_under,
    random_like,
    rates,
    rates_by_lang,
    specificity,
)
from interp.interventions import ablate, steer
from interp.judge import is_suppressed
from interp.models import Model
from interp.selection import Scorer, SweepData, find_suppression_tokens, sweep
from interp.thinking import empty_thought_probability, thinks

SEED = 0


class Contrast(NamedTuple):
    target: str  # the set whose suppression the direction should undo: swept, evaluated, ablated
    control: str  # its matched set: evaluated beside it, steered, the specificity baseline
    suppressed_from: tuple[str, ...]  # the direction: mean of these sets' suppressed train prompts ...
    answered_from: tuple[str, ...]  # ... minus the mean of these sets' answered ones (per language)


# Censorship pools the two political sets on both sides. Sensitive-suppressed vs answered-controls alone
# mixes the behaviour with the topic (China vs elsewhere), and this model refuses the controls almost as
# often as the sensitive prompts (see the README): on validation, the pooled contrast undoes more at a
# lower KL (scripts/compare_contrasts.py).
CONTRASTS = {
    "censorship": Contrast("censored", "controls", ("censored", "controls"), ("censored", "controls")),
    "refusal": Contrast("harmful", "harmless", ("harmful",), ("harmless",)),
}


@dataclass
class RunConfig:
    quick: bool = False
    label_tokens: int = 32
    sweep_n: int = 8  # validation prompts per group in the selection sweep
    confirm_n: int = 32  # harmless validation prompts for the front-runners' KL
    sweep_positions: int | None = None  # sweep only the last k post-instruction positions (None: all)
    kl_threshold: float = 0.1
    coefs: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    steer_n: int = 12
    ce_n: int = 24
    per_split: int | None = None  # cap prompts per set and split (quick mode)
    batch_size: int = 16
    method: str = "mean_diff"  # mean_diff | pca | probe
    affine: bool = False  # ablate relative to the answered-set mean instead of to zero
    transfer: bool = True  # cross-lingual transfer: each language's own censorship direction on all prompts
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def make(cls, quick: bool, **overrides) -> RunConfig:
        if quick:
            return cls(quick=True, label_tokens=24, sweep_n=6, sweep_positions=1, coefs=(0.0, 1.0, 2.0), steer_n=8,
                       ce_n=8, per_split=16, transfer=False, **overrides)
        return cls(**overrides)


class Stage:
    def __init__(self, config: RunConfig, name: str):
        self.config, self.name = config, name

    def __enter__(self):
        print(f"[interp] stage: {self.name}")
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.config.timings[self.name] = round(time.perf_counter() - self.start, 2)


def load_sets(config: RunConfig) -> dict[str, dict[str, P.PromptSet]]:
    sets = {}
    for name in P.BUILTIN:
        sets[name] = {}
        for split in P.SPLITS:
            chosen = P.load(name, split)
            sets[name][split] = chosen.head(config.per_split) if config.per_split else chosen
    return sets


def label_all(model: Model, sets, config: RunConfig, out: Path) -> dict[str, dict[str, list[dict]]]:
    labelled: dict[str, dict[str, list[dict]]] = {}
    for name, by_split in sets.items():
        labelled[name] = {}
        for split, chosen in by_split.items():
            labelled[name][split] = generate_rows(
                model, chosen.items, None, config.label_tokens, description=f"label {name}/{split}"
            )
            if thinks(model):  # reasoning models: how likely the thought is skipped, per prompt
                p_empty = empty_thought_probability(model, [r["prompt"] for r in labelled[name][split]])
                for row, p in zip(labelled[name][split], p_empty, strict=True):
                    row["p_empty_thought"] = p
    atomic_write_jsonl(out / "labels.jsonl", [
        {"set": n, "split": s, **row} for n, by in labelled.items() for s, rows in by.items() for row in rows
    ])
    return labelled


def _group(rows: list[dict], suppressed: bool) -> list[dict]:
    return [r for r in rows if is_suppressed(r["label"]) == suppressed]


def check_contrast(labelled, kind: str, split: str, suppressed_from: tuple[str, ...],
                   answered_from: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    """The suppressed prompts of some sets and the answered prompts of others, in one split."""
    pos = [r for name in suppressed_from for r in _group(labelled[name][split], True)]
    neg = [r for name in answered_from for r in _group(labelled[name][split], False)]
    if not pos or not neg:
        what = (f"suppresses none of the {'/'.join(suppressed_from)}" if not pos
                else f"answers none of the {'/'.join(answered_from)}")
        raise InterpError(
            f"{kind}: the model {what} {split} prompts, so there is no behavioural contrast; "
            "try another model or prompt set (see `interp label`)"
        )
    return pos, neg


def extract_candidates(model: Model, labelled, config: RunConfig,
                       kinds: tuple[str, ...] = tuple(CONTRASTS)) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """One activation pass over every train prompt in both contrasts. Returns candidates per kind, the
    answered-set means (the affine variant's offsets), and each language's weight in the contrast.

    mean_diff is stratified by language (see directions.stratified_difference); pca and probe pool.
    """
    texts, groups = [], []
    for kind in kinds:
        c = CONTRASTS[kind]
        pos, neg = check_contrast(labelled, kind, "train", c.suppressed_from, c.answered_from)
        texts += [r["prompt"] for r in pos + neg]
        groups += [f"{kind}:suppressed|{r['lang']}" for r in pos] + [f"{kind}:answered|{r['lang']}" for r in neg]
    acts = collect(model, texts, groups, batch_size=config.batch_size, keep=config.method != "mean_diff")
    langs = sorted({g.split("|")[1] for g in groups})
    candidates, means, weights = {}, {}, {}
    for kind in kinds:
        a, b = f"{kind}:suppressed", f"{kind}:answered"
        pooled_a, pooled_b = [f"{a}|{x}" for x in langs], [f"{b}|{x}" for x in langs]
        means[kind] = acts.mean(*pooled_b).float()
        if config.method == "mean_diff":
            candidates[kind], weights[kind] = dirs.stratified_difference(acts, a, b, langs)
            for lang in (x for x in langs if weights[kind].get(x)):  # each language alone (transfer)
                candidates[f"{kind}.{lang}"] = dirs.mean_difference(acts.mean(f"{a}|{lang}"), acts.mean(f"{b}|{lang}"))
        else:
            pooled = acts.merged({g: "suppressed" for g in pooled_a} | {g: "answered" for g in pooled_b})
            candidates[kind] = dirs.build_candidates(pooled, "suppressed", "answered", config.method)
            weights[kind] = {"pooled": 1}
    return candidates, means, weights


def build_scorer(model: Model, labelled) -> tuple[Scorer, list[str]]:
    rows = [r for by in labelled.values() for r in by["train"]]
    suppressed = [r["text"] for r in rows if is_suppressed(r["label"])]
    answered = [r["text"] for r in rows if not is_suppressed(r["label"])]
    tokens = find_suppression_tokens(model, suppressed, answered)
    return Scorer(tokens), [model.tokenizer.decode([t]) for t in tokens]


def sweep_data(labelled, kind: str, config: RunConfig) -> SweepData:
    """Validation prompts for the sweep: the target set's suppressed (bypass) and the control set's
    answered (induce), harmless for KL."""
    c = CONTRASTS[kind]
    pos, neg = check_contrast(labelled, kind, "val", (c.target,), (c.control,))
    harmless = [r["prompt"] for r in labelled["harmless"]["val"]]
    n = config.sweep_n
    return SweepData([r["prompt"] for r in pos][:n], [r["prompt"] for r in neg][:n], harmless[:n],
                     confirm=harmless[n : n + config.confirm_n])


def select(model: Model, candidates, answered_means, labelled, scorer: Scorer, config: RunConfig,
           hashes) -> tuple[dict, dict]:
    chosen, sweeps = {}, {}
    for kind in CONTRASTS:
        data = sweep_data(labelled, kind, config)
        rows, direction = sweep(model, candidates[kind], data, scorer, kind, config.kl_threshold,
                                positions=config.sweep_positions,
                                offsets=answered_means[kind] if config.affine else None)
        chosen[kind] = replace(direction, prompt_hashes=hashes, method=config.method)
        sweeps[kind] = rows
    return chosen, sweeps


def cosine_per_layer(candidates, chosen) -> list[float]:
    c_pos, r_pos = chosen["censorship"].position, chosen["refusal"].position
    out = []
    for layer in range(candidates["censorship"].shape[0]):
        a, b = candidates["censorship"][layer, c_pos], candidates["refusal"][layer, r_pos]
        out.append(float(torch.nn.functional.cosine_similarity(a, b, dim=0)))
    return out


def paired_rows(kind: str, set_name: str, before: list[dict], after: list[dict]) -> list[dict]:
    """One row per prompt: the same prompt before and after an intervention (per_prompt.jsonl)."""
    return [{"kind": kind, "set": set_name, "prompt": b["prompt"], "category": b["category"], "lang": b["lang"],
             "label_before": b["label"], "label_after": a["label"],
             "suppressed_before": is_suppressed(b["label"]), "suppressed_after": is_suppressed(a["label"]),
             "fact_recall_before": b["fact_recall"], "fact_recall_after": a["fact_recall"],
             "text_before": b["text"], "text_after": a["text"]} for b, a in zip(before, after, strict=True)]


def evaluate_kind(model: Model, kind: str, direction, labelled, config: RunConfig, harmless_logits,
                  per_prompt: list[dict]) -> dict:
    pos_set, neg_set = CONTRASTS[kind].target, CONTRASTS[kind].control
    result: dict = {"layer": direction.layer, "position": direction.position, "scores": direction.scores}
    for set_name in (pos_set, neg_set):
        base_rows = labelled[set_name]["test"]
        after = generate_rows(model, _as_prompts(base_rows), lambda: ablate(model, direction),
                              config.label_tokens, description=f"ablate {direction.kind}: {set_name}")
        result[set_name] = {"baseline": rates_by_lang(base_rows), "ablated": rates_by_lang(after),
                            "examples": _examples(base_rows, after)}
        per_prompt += paired_rows(direction.kind, set_name, base_rows, after)
    result["baseline"], result["ablated"] = result[pos_set]["baseline"]["all"], result[pos_set]["ablated"]["all"]
    harmless = [r["prompt"] for r in labelled["harmless"]["test"]]
    result["kl_harmless"] = kl_under(model, harmless, lambda: ablate(model, direction), harmless_logits)
    ce_rows = labelled["harmless"]["test"][: config.ce_n]
    ce_args = ([r["prompt"] for r in ce_rows], [r["text"] for r in ce_rows])
    result["ce_harmless"] = {"base": continuation_ce(model, *ce_args),
                             "ablated": continuation_ce(model, *ce_args, intervention=lambda: ablate(model, direction))}
    rand = random_like(direction, SEED)
    rand_rows = generate_rows(model, _as_prompts(labelled[pos_set]["test"]), lambda: ablate(model, rand),
                              config.label_tokens, description=f"random baseline {kind}")
    per_prompt += paired_rows(rand.kind, pos_set, labelled[pos_set]["test"], rand_rows)
    result["random_baseline"] = rates(rand_rows) | {
        "kl_harmless": kl_under(model, harmless, lambda: ablate(model, rand), harmless_logits)}
    if kind == "censorship":
        result["specificity"] = {"baseline": specificity(result[pos_set]["baseline"], result[neg_set]["baseline"]),
                                 "ablated": specificity(result[pos_set]["ablated"], result[neg_set]["ablated"])}
    return result


def _as_prompts(rows: list[dict]) -> list[P.Prompt]:
    """Labelled rows back to prompts (with their facts, for fact recall), to generate on again."""
    return [P.Prompt(r["prompt"], r["category"], r["lang"], tuple(r.get("facts") or ())) for r in rows]


def _examples(before: list[dict], after: list[dict], n: int = 4) -> list[dict]:
    flipped = [(b, a) for b, a in zip(before, after, strict=True) if is_suppressed(b["label"]) != is_suppressed(a["label"])]
    return [{"prompt": b["prompt"], "lang": b["lang"], "baseline_label": b["label"], "baseline_text": b["text"],
             "intervened_label": a["label"], "intervened_text": a["text"]} for b, a in (flipped or list(zip(before, after, strict=True)))[:n]]


def dose_response(model: Model, kind: str, direction, labelled, config: RunConfig, harmless_logits) -> list[dict]:
    answered = [r for r in labelled[CONTRASTS[kind].control]["test"] if not is_suppressed(r["label"])][: config.steer_n]
    items = _as_prompts(answered)
    harmless = [r["prompt"] for r in labelled["harmless"]["test"]]
    rows = []
    for coef in config.coefs:
        def intervention(c=coef):
            return steer(model, direction, c)

        out = generate_rows(model, items, intervention, config.label_tokens, description=f"steer {kind} x{coef}")
        rows.append({"coef": coef, "suppression_rate": rates(out)["suppression_rate"], "n": len(out),
                     "kl_harmless": kl_under(model, harmless, intervention, harmless_logits)})
    return rows


def transfer(model: Model, candidates, chosen: dict[str, dirs.Direction], labelled, config: RunConfig) -> dict:
    """What each direction undoes outside its own contrast:
    - languages: the censorship direction built from one language's prompts alone, at the chosen
      (layer, position), ablated on sensitive test prompts of every language;
    - kinds: the refusal direction ablated on sensitive prompts, the censorship one on harmful prompts.
    """
    c = chosen["censorship"]
    out: dict = {"languages": {"layer": c.layer, "position": c.position}, "kinds": {}}
    for key in sorted(k for k in candidates if k.startswith("censorship.")):
        lang = key.split(".", 1)[1]
        raw = candidates[key][c.layer, c.position]
        if raw.norm() == 0:
            continue
        d = dirs.Direction(dirs.unit(raw), raw, c.layer, c.position, f"censorship[{lang}]", model.fingerprint)
        out["languages"][f"from_{lang}"] = {"cosine_with_pooled": d.cosine(c),
                                            "ablated": _ablated_rates(model, d, labelled, "censored", config)}
    out["kinds"]["refusal_on_censored"] = _ablated_rates(model, chosen["refusal"], labelled, "censored", config)
    out["kinds"]["censorship_on_harmful"] = _ablated_rates(model, c, labelled, "harmful", config)
    return out


def _ablated_rates(model: Model, d: dirs.Direction, labelled, set_name: str, config: RunConfig) -> dict:
    rows = labelled[set_name]["test"]
    after = generate_rows(model, _as_prompts(rows), lambda: ablate(model, d), config.label_tokens,
                          description=f"transfer: {d.kind} on {set_name}")
    return {"baseline": rates_by_lang(rows), "ablated": rates_by_lang(after)}


def find_direction(model: Model, kind: str, config: RunConfig, out: Path) -> dirs.Direction:
    """`interp direction`: label train/val of one contrast, extract, select, save."""
    c = CONTRASTS[kind]
    names = tuple(dict.fromkeys((c.target, c.control, *c.suppressed_from, *c.answered_from)))
    sets = {n: by for n, by in load_sets(config).items() if n in (*names, "harmless")}
    labelled = {n: {s: generate_rows(model, v.items, None, config.label_tokens, description=f"label {n}/{s}")
                    for s, v in by.items() if s != "test"} for n, by in sets.items()}
    all_candidates, means, weights = extract_candidates(model, labelled, config, kinds=(kind,))
    candidates = all_candidates[kind]
    rows = [r for n in names for r in labelled[n]["train"]]
    scorer = Scorer(find_suppression_tokens(model, [r["text"] for r in rows if is_suppressed(r["label"])],
                                            [r["text"] for r in rows if not is_suppressed(r["label"])]))
    atomic_write_json(out / "scorer.json", {"token_ids": scorer.token_ids,
                                            "tokens": [model.tokenizer.decode([t]) for t in scorer.token_ids]})
    sweep_rows, chosen = sweep(model, candidates, sweep_data(labelled, kind, config), scorer, kind,
                               config.kl_threshold, positions=config.sweep_positions,
                               offsets=means[kind] if config.affine else None)
    chosen = replace(chosen, prompt_hashes={n: sets[n]["train"].sha256 for n in names}, method=config.method)
    dirs.save([chosen], out, {f"{kind}.candidates": candidates})
    atomic_write_json(out / "sweep.json", {"rows": sweep_rows, "strata": weights[kind]})
    return chosen

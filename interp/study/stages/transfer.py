"""Transfer: what each direction undoes outside its own contrast.
- languages: the censorship direction built from one language's prompts alone, at the chosen (layer,
  position), ablated on sensitive test prompts of every language;
- kinds: the refusal direction ablated on sensitive prompts, the censorship one on harmful prompts.
Each before/after pair is returned too (kind: the direction's own name, e.g. "censorship[zh]"), so the
rates can be read back against their completions (transfer.jsonl).
"""

from __future__ import annotations

from interp.core import directions as dirs
from interp.core.interventions import ablate
from interp.core.model import Model
from interp.study.config import RunConfig
from interp.study.measures import as_prompts, generate_rows, paired_rows, set_result
from interp.study.records import Labels, LanguageTransfer, PairedRow, SetResult, Transfer, TransferFrom
from interp.study.stages.candidates import Candidates

__all__ = ["transfer"]


def transfer(model: Model, candidates: Candidates, chosen: dict[str, dirs.Direction], labels: Labels,
             config: RunConfig) -> tuple[Transfer, list[PairedRow]]:
    c, rows = chosen["censorship"], []
    built_from = {}
    for key in sorted(k for k in candidates.by_kind if k.startswith("censorship.")):
        lang = key.split(".", 1)[1]
        raw = candidates.by_kind[key][c.layer, c.position]
        if raw.norm() == 0:
            continue
        d = dirs.Direction(dirs.unit(raw), raw, c.layer, c.position, f"censorship[{lang}]", model.fingerprint)
        built_from[lang] = TransferFrom(d.cosine(c), _ablated(model, d, labels, "censored", config, rows))
    kinds = {"refusal_on_censored": _ablated(model, chosen["refusal"], labels, "censored", config, rows),
             "censorship_on_harmful": _ablated(model, c, labels, "harmful", config, rows)}
    return Transfer(LanguageTransfer(c.layer, c.position, built_from), kinds), rows


def _ablated(model: Model, d: dirs.Direction, labels: Labels, set_name: str, config: RunConfig,
             rows: list[PairedRow]) -> SetResult:
    """The set's rates with `d` ablated; its before/after pairs are appended to `rows`."""
    before = labels.rows(set_name, "test")
    after = generate_rows(model, as_prompts(before), lambda: ablate(model, d), config.eval_tokens,
                          description=f"transfer: {d.kind} on {set_name}", set_name=set_name, split="test")
    rows += paired_rows(d.kind, set_name, before, after)
    return set_result(before, after, with_examples=False)

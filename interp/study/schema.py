"""Reading older report.json files: `upgrade` maps a schema-1 report into schema 2's shape, so every
loader works on one schema."""

from __future__ import annotations

import re

from interp.core.errors import InterpError
from interp.study.config import CONTRASTS
from interp.study.records import SCHEMA, to_json

__all__ = ["upgrade"]

_SCHEMA1_SETS = re.compile(r"^(censored|controls|harmful|harmless)$")


def upgrade(data: dict, where: str = "report.json") -> dict:
    """A schema-1 report.json (sets beside the kind's fields, projections flat, `from_LANG` transfer
    keys) in schema 2's shape; a schema-2 one unchanged."""
    schema = data.get("schema", 1)
    if type(schema) is not int or schema < 1:
        raise InterpError(f"{where}: 'schema' must be a positive integer, got {schema!r:.40}")
    if schema > SCHEMA:
        raise InterpError(f"{where}: report schema {schema} is newer than this interp reads ({SCHEMA}); "
                          "upgrade interp to read it")
    if schema == SCHEMA:
        return data
    try:
        return _upgrade_schema1(dict(data))
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        raise InterpError(f"{where}: a schema-1 report with an unexpected shape ({type(err).__name__}: {err}); "
                          "it cannot be read") from err


def _upgrade_schema1(data: dict) -> dict:
    kinds = {}
    for name, kind in data.get("kinds", {}).items():
        kind = dict(kind)
        kind["sets"] = {k: kind.pop(k) for k in list(kind) if _SCHEMA1_SETS.match(k)}
        kinds[name] = kind
    data["kinds"] = kinds
    data["projections"] = [
        {"set": p["set"], "label": p["label"], "lang": p["lang"],
         "values": {k: v for k, v in p.items() if k not in ("set", "label", "lang")}}
        for p in data.get("projections", [])
    ]
    if data.get("transfer"):
        languages = dict(data["transfer"]["languages"])
        languages["built_from"] = {k.removeprefix("from_"): languages.pop(k) for k in list(languages)
                                   if k.startswith("from_")}
        data["transfer"] = {**data["transfer"], "languages": languages}
    # schema 1 stored the two extracted contrasts without their names, and no row for derived kinds
    stored = data.get("contrasts") or {}
    data["contrasts"] = {c.name: {**to_json(c), **stored.get(c.name, {})} for c in CONTRASTS if c.name in kinds}
    for kind in kinds.values():
        random = kind.get("random_baseline")
        if random and "rates" not in random:
            kind["random_baseline"] = {"rates": {k: v for k, v in random.items() if k != "kl_harmless"},
                                       "kl_harmless": random["kl_harmless"]}
    data.setdefault("completion_cache", False)  # recorded from 2026-11 on; earlier runs generated afresh
    data["schema"] = SCHEMA
    return data

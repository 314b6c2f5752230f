"""interp: find where a chat model decides to go silent, and measure how much of that silence can be undone.

Layers, importing downward only: `interp.core` (models, backends, interventions, directions, activations,
generation, measurement) -> `interp.behaviour` (prompts, judges) -> `interp.study` (typed records, the run
directory, stages, runner, report, figures) -> `interp.cli`. The names below are the public API.
"""

import importlib
from typing import Any

# name -> (module, attribute). Imported on first use, so `import interp.study.figures` (no model needed)
# does not pay for torch and transformers.
_PUBLIC: dict[str, tuple[str, str | None]] = {  # None: the module itself
    "Case": ("interp.behaviour.judges", "Case"),
    "make_judge": ("interp.behaviour.judges", "make_judge"),
    "capability_accuracy": ("interp.behaviour.capability", "capability_accuracy"),
    "load_capability": ("interp.behaviour.capability", "load_capability"),
    "Prompt": ("interp.behaviour.prompts", "Prompt"),
    "PromptSet": ("interp.behaviour.prompts", "PromptSet"),
    "load_prompts": ("interp.behaviour.prompts", "load"),
    "Activations": ("interp.core.activations", "Activations"),
    "collect": ("interp.core.activations", "collect"),
    "Direction": ("interp.core.directions", "Direction"),
    "load_direction": ("interp.core.directions", "load"),
    "save_directions": ("interp.core.directions", "save"),
    "TransformersEngine": ("interp.core.engines", "TransformersEngine"),
    "VLLMEngine": ("interp.core.engines", "VLLMEngine"),
    "InterpError": ("interp.core.errors", "InterpError"),
    "complete": ("interp.core.generation", "complete"),
    "ablate": ("interp.core.interventions", "ablate"),
    "orthogonalize": ("interp.core.interventions", "orthogonalize"),
    "steer": ("interp.core.interventions", "steer"),
    "run_lm_eval": ("interp.core.lm_eval_adapter", "run_lm_eval"),
    "continuation_ce": ("interp.core.measure", "continuation_ce"),
    "continuation_kl": ("interp.core.measure", "continuation_kl"),
    "kl_under": ("interp.core.measure", "kl_under"),
    "last_logits": ("interp.core.measure", "last_logits"),
    "mean_kl": ("interp.core.measure", "mean_kl"),
    "Model": ("interp.core.model", "Model"),
    "load_model": ("interp.core.model", "load_model"),
    "wrap_model": ("interp.core.model", "wrap_model"),
    "ChatBatch": ("interp.core.types", "ChatBatch"),
    "Kernel": ("interp.core.variants", "Kernel"),
    "Variant": ("interp.core.variants", "Variant"),
    "ablate_variant": ("interp.core.variants", "ablate_variant"),
    "biproject": ("interp.core.variants", "biproject"),
    "orthogonalize_variant": ("interp.core.variants", "orthogonalize_variant"),
    "Edit": ("interp.core.types", "Edit"),
    "__version__": ("interp.core.version", "__version__"),
    "CONTRASTS": ("interp.study.config", "CONTRASTS"),
    "Contrast": ("interp.study.config", "Contrast"),
    "RunConfig": ("interp.study.config", "RunConfig"),
    "Report": ("interp.study.records", "Report"),
    "records": ("interp.study.records", None),
    "RunDir": ("interp.study.rundir", "RunDir"),
    "Study": ("interp.study.runner", "Study"),
    "find_directions": ("interp.study.runner", "find_directions"),
    "run": ("interp.study.runner", "run"),
    "search_variant": ("interp.study.stages.search", "search_variant"),
    "pareto_front": ("interp.study.search", "pareto_front"),
}

__all__ = [
    "CONTRASTS", "Activations", "ChatBatch", "Contrast", "Direction", "Edit", "InterpError", "Model", "Prompt",
    "PromptSet", "Report", "RunConfig", "RunDir", "Study", "__version__", "ablate", "collect", "complete",
    "continuation_ce", "find_directions", "kl_under", "last_logits", "load_direction", "load_model",
    "load_prompts", "make_judge", "mean_kl", "orthogonalize", "records", "run", "run_lm_eval", "save_directions", "steer",
    "wrap_model",
    "Kernel", "Variant", "ablate_variant", "biproject", "orthogonalize_variant",
    "TransformersEngine", "VLLMEngine",  # interp.core.engines
    "capability_accuracy", "continuation_kl", "load_capability",  # damage beyond first-token KL
    "Case", "pareto_front", "search_variant",  # judge a completion; a search's front; the edit a trial made
]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

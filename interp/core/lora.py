"""The orthogonalisation as a PEFT LoRA adapter, computed from the unedited weights.

Every residual writer's edit is rank one: along its residual axis x -> x - a (b . x), with a = b = u, or
the oblique pair of a post-norm (see `interventions.orthogonalize`). For a Linear W [d_model, d_in] that is
W' = W + B A with B = -a ([d_model, 1]) and A = b^T W ([1, d_in]): a LoRA update of rank 1 with scaling 1
(lora_alpha = r = 1). The embedding's W_E' = W_E - (W_E b) a^T is PEFT's embedding LoRA (delta = A^T B^T);
a fused experts tensor [E, d_model, d_ff] is a `target_parameters` LoRA with one rank-1 pair per expert.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from interp.core.archs import Writer
from interp.core.directions import Direction
from interp.core.errors import InterpError
from interp.core.interventions import oblique_pair
from interp.core.model import Model

__all__ = ["LoraAdapter", "lora_adapter", "write_lora"]

PREFIX = "base_model.model."  # PEFT's key prefix in a saved adapter (the adapter name is dropped)


@dataclass(frozen=True)
class LoraAdapter:
    """A rank-1 LoRA per residual writer; `tensors` are float32, keyed as PEFT saves them."""

    tensors: dict[str, torch.Tensor]
    target_modules: tuple[str, ...]  # Linear and embedding writers, by full module path
    target_parameters: tuple[str, ...]  # fused experts tensors, by full parameter path
    modules_to_save: tuple[str, ...]  # a tied output head, kept as its own copy (see `lora_adapter`)
    base_model: str
    edited: tuple[str, ...]
    declared: int
    approximate: tuple[str, ...]  # writers behind a post-norm: the oblique edit, as in orthogonalize


def _factors(writer: Writer, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
    w = writer.weight.detach()
    if writer.axis == -1:  # embedding [vocab, d_model]
        return {f"{writer.name}.lora_embedding_A": (w.float() @ b)[None, :],
                f"{writer.name}.lora_embedding_B": -a[:, None]}
    if w.ndim == 3:  # [E, d_model, d_ff]: PEFT stacks the experts' rank-1 pairs along the rank axis
        rows = torch.stack([b @ expert.float() for expert in w])  # [E, d_ff]
        module = writer.name.rpartition(".")[0]
        return {f"{module}.lora_A.weight": rows, f"{module}.lora_B.weight": -a[:, None].expand(-1, len(w)).clone()}
    return {f"{writer.name}.lora_A.weight": (b @ w.float())[None, :], f"{writer.name}.lora_B.weight": -a[:, None]}


def _tied_head(model: Model) -> str | None:
    head = model.hf.get_output_embeddings()
    if head is not None and head.weight.data_ptr() == model.writers[0].weight.data_ptr():
        return model.arch.unembed
    return None


@torch.no_grad()
def lora_adapter(model: Model, direction: Direction) -> LoraAdapter:
    """The adapter whose merge equals `orthogonalize(model, direction)`; the model is not changed.

    A tied output head would change with the embedding on `merge_and_unload()`: it goes into the adapter
    as a module to save (its unedited copy), as orthogonalize unties it."""
    if direction.d_model != model.d_model:
        raise InterpError(f"direction has d_model {direction.d_model}, the model has {model.d_model}")
    writers = model.writers
    declared = 1 + sum(len(sub.weights) for layer in range(model.n_layers) for sub in model.arch.sublayers(layer))
    if len(writers) != declared:
        raise InterpError(f"found {len(writers)} of the {declared} residual writers the architecture declares; "
                          "export --format hf names them")
    if any(w.weight.device.type == "meta" for w in writers):
        raise InterpError("the LoRA export reads the weights in memory; this model has offloaded (meta) weights: "
                          "load it without disk offload")
    biased = [w.name for w in writers if w.bias is not None]
    if biased:
        raise InterpError(f"{biased[0]} has a bias, which a rank-1 LoRA of its weight cannot edit: "
                          "export --format hf instead")
    u = direction.unit.float()
    tensors: dict[str, torch.Tensor] = {}
    modules, parameters, approximate = [], [], []
    for writer in writers:
        if writer.weight.ndim == 3:
            owner = model.hf.get_submodule(writer.name.rpartition(".")[0])
            if getattr(owner, "is_transposed", False):  # PEFT would read the experts as [E, d_in, d_out]
                raise InterpError(f"{writer.name}: PEFT reads these experts transposed; export --format hf instead")
            parameters.append(writer.name)
        else:
            modules.append(writer.name)
        a, b = oblique_pair(writer, u)
        tensors |= {PREFIX + k: v.float().cpu().contiguous() for k, v in _factors(writer, a.float(), b.float()).items()}
        if writer.post_norm is not None:
            approximate.append(writer.name)
    head = _tied_head(model)
    if head is not None:
        weight = model.hf.get_output_embeddings().weight
        tensors[f"{PREFIX}{head}.weight"] = weight.detach().clone().contiguous()
    return LoraAdapter(tensors, tuple(modules), tuple(parameters), (head,) if head else (), model.spec,
                       tuple(w.name for w in writers), declared, tuple(approximate))


def write_lora(adapter: LoraAdapter, work: Path) -> None:
    """adapter_config.json and adapter_model.safetensors, loadable by `peft.PeftModel.from_pretrained`."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    config = LoraConfig(r=1, lora_alpha=1, lora_dropout=0.0, bias="none", task_type="CAUSAL_LM",
                        target_modules=list(adapter.target_modules),
                        target_parameters=list(adapter.target_parameters) or None,
                        modules_to_save=list(adapter.modules_to_save) or None,
                        base_model_name_or_path=adapter.base_model, inference_mode=True)
    config.save_pretrained(str(work))
    save_file(adapter.tensors, str(work / "adapter_model.safetensors"), metadata={"format": "pt"})

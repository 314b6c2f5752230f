"""The one way interp turns a user prompt into model input: the tokenizer's own chat template, one user
turn, the generation prompt appended, tokenized without extra special tokens (the template has its own).

`Model` formats through these, and so does any engine that runs the weights outside interp (vLLM), so a
prompt reaches every engine as the same token ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from interp.core.errors import InterpError

__all__ = ["chat_text", "chat_token_ids", "find_post_instruction_ids"]


def chat_text(tokenizer: Any, prompt: str, **template_kwargs: Any) -> str:
    """template_kwargs: the template's own switches, e.g. {"enable_thinking": False} (Model.template_kwargs)."""
    messages = [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **template_kwargs)


def chat_token_ids(tokenizer: Any, prompts: Sequence[str], **template_kwargs: Any) -> list[list[int]]:
    """Each prompt's templated token ids, unpadded."""
    return [tokenizer(chat_text(tokenizer, p, **template_kwargs), add_special_tokens=False)["input_ids"]
            for p in prompts]


def find_post_instruction_ids(tokenizer: Any, **template_kwargs: Any) -> list[int]:
    """Tokens the template puts after the user's text, found by templating a marker and splitting."""
    if not getattr(tokenizer, "chat_template", None):
        raise InterpError("the tokenizer has no chat template: interp needs an instruction-tuned chat model")
    marker = "interp-marker-7"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True, **template_kwargs
    )
    suffix = text[text.rindex(marker) + len(marker) :]
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    alone = tokenizer(suffix, add_special_tokens=False)["input_ids"]
    n = 0  # the longest common tail: merges across the boundary must not count
    while n < min(len(full), len(alone)) and full[-1 - n] == alone[-1 - n]:
        n += 1
    if n == 0:
        raise InterpError("could not find the chat template's post-instruction tokens")
    return list(full[-n:])

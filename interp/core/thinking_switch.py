"""The thinking switch of hybrid reasoning models' chat templates (Qwen3: `enable_thinking`), as a load
option: `auto` leaves the template's default, `on`/`off` pass `enable_thinking=True/False` to every
`apply_chat_template` call. Asking for a switch the template does not have is a one-line error, not a
silently ignored keyword."""

from __future__ import annotations

from typing import Any

from interp.core.errors import InterpError

__all__ = ["THINKING", "template_kwargs", "thinking_switch"]

THINKING = ("auto", "on", "off")
_SWITCH = "enable_thinking"


def template_kwargs(tokenizer: Any, thinking: str = "auto") -> dict[str, bool]:
    """The chat-template keywords for a thinking switch (none for `auto`)."""
    if thinking not in THINKING:
        raise InterpError(f"unknown --thinking {thinking!r}; choose one of {', '.join(THINKING)}")
    if thinking == "auto":
        return {}
    if _SWITCH not in str(getattr(tokenizer, "chat_template", None) or ""):
        raise InterpError(f"--thinking {thinking}: this model's chat template has no {_SWITCH} switch (Qwen3's has; "
                          "R1 distills and QwQ always think); use --thinking auto")
    return {_SWITCH: thinking == "on"}


def thinking_switch(kwargs: dict[str, Any]) -> str:
    """The switch that chat-template keywords set: auto, on or off."""
    return "auto" if _SWITCH not in kwargs else ("on" if kwargs[_SWITCH] else "off")

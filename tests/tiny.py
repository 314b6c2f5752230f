"""Tiny random-weight models built from a config, with a byte-level chat tokenizer: seconds, offline."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from interp.core.model import Model, wrap_model

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def byte_tokenizer() -> PreTrainedTokenizerFast:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for special in SPECIALS:
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tok.chat_template = CHATML
    return tok


def tiny_model(family: str = "qwen2", backend: str = "transformer_lens", seed: int = 0, layers: int = 3,
               tokenizer: PreTrainedTokenizerFast | None = None) -> Model:
    torch.manual_seed(seed)
    tok = tokenizer or byte_tokenizer()
    common = dict(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.pad_token_id,
    )
    if family == "qwen2":
        hf = Qwen2ForCausalLM(Qwen2Config(**common, tie_word_embeddings=False))
    else:
        hf = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False))
    hf.config._attn_implementation = "eager"
    return wrap_model(hf.float(), tok, spec=f"tiny-{family}", backend=backend)


REFUSAL = "I'm sorry, I can't help with that."
ANSWER = "Sure! Here is what I know."


def trained_refuser(prompts_to_refuse: list[str], prompts_to_answer: list[str], steps: int = 150, seed: int = 0,
                    backend: str = "transformer_lens") -> Model:
    """A tiny Qwen2 trained (seconds, CPU) to refuse one prompt list and answer the other: real behaviour
    for end-to-end pipeline tests, not a mock."""
    model = tiny_model("qwen2", backend=backend, seed=seed, layers=2)
    return teach_refusal(model, prompts_to_refuse, prompts_to_answer, steps)


def teach_refusal(model: Model, prompts_to_refuse: list[str], prompts_to_answer: list[str], steps: int = 150,
                  lr: float = 3e-3) -> Model:
    """Train `model` in place to reply REFUSAL to one prompt list and ANSWER to the other."""
    pairs = [(p, REFUSAL) for p in prompts_to_refuse] + [(p, ANSWER) for p in prompts_to_answer]
    return teach(model, pairs, steps, lr)


def teach(model: Model, pairs: list[tuple[str, str]], steps: int = 150, lr: float = 3e-3) -> Model:
    """Train `model` in place to give each (prompt, reply) pair's reply (then EOS) to its chat prompt."""
    tok, hf = model.tokenizer, model.hf
    rows = []
    for prompt, reply in pairs:
        head = tok(model.chat_text(prompt), add_special_tokens=False)["input_ids"]
        tail = tok(reply, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        rows.append((head, tail))
    width = max(len(h) + len(t) for h, t in rows)
    ids = torch.full((len(rows), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (head, tail) in enumerate(rows):
        seq = head + tail
        ids[i, width - len(seq):] = torch.tensor(seq)
        mask[i, width - len(seq):] = 1
        labels[i, width - len(tail):] = torch.tensor(tail)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    optimizer = torch.optim.AdamW(hf.parameters(), lr=lr)
    hf.train()
    for _ in range(steps):
        loss = hf(input_ids=ids, attention_mask=mask, position_ids=position_ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hf.eval()
    from interp.core.model import fingerprint_module

    model.fingerprint = fingerprint_module(hf)
    return model


def tiny_config():
    """The `--quick` run configuration shrunk further for tiny models: seconds per stage."""
    from interp.study.config import RunConfig

    return RunConfig.make(quick=True, per_split=4, label_tokens=12, eval_tokens=12, coefs=(0.0, 1.0), steer_n=2, ce_n=2,
                          kl_n=2, capability_n=8)


def tiny_refuser() -> Model:
    """The tiny model trained to refuse the quick run's censored and harmful prompts and answer the rest."""
    from interp.study.stages.label import load_sets

    sets = load_sets(tiny_config())
    texts = {name: [p.prompt for split in by.values() for p in split.items] for name, by in sets.items()}
    return trained_refuser(texts["censored"] + texts["harmful"], texts["controls"] + texts["harmless"])

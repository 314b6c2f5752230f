"""`--format gguf` from a model that was not born a GGUF: the orthogonalised HF weights converted into a GGUF
that `transformers` (`gguf_file=`) loads back with the edited model's logits and tokenizer; refusals come
before the model is edited."""

import json
import math

import gguf
import pytest
import torch
from test_hostile_inputs import cli, one_line_error
from test_math import random_direction
from tiny import CHATML, SPECIALS, tiny_model
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen3Config,
    Qwen3ForCausalLM,
)

from interp.core import directions as dirs
from interp.core.errors import InterpError
from interp.core.export import export, export_hf
from interp.core.gguf_convert import convert_hf_dir, gguf_tokenizer_pre, write_gguf
from interp.core.interventions import orthogonalize
from interp.core.model import load_model, wrap_model

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
PROMPTS = ["The theatre in 2024", "tell me about the  thing\n\nthen", "<|im_start|>user\nhi<|im_end|>"]
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("1", "2")]


def bpe_tokenizer(pre: str = "split", split: str = QWEN2_SPLIT, merges=MERGES) -> PreTrainedTokenizerFast:
    """A byte-level BPE with a few merges and the ChatML specials, split as `pre` says (Qwen's, Llama 3's,
    GPT-2's or SmolLM's way)."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    for special in SPECIALS:
        vocab[special] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre != "split")
    core.pre_tokenizer = {
        "split": pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"), byte_level]),
        "gpt-2": byte_level,
        "smollm": pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level]),
    }[pre]
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tok.chat_template = CHATML
    return tok


def logits(hf, tokenizer) -> list[torch.Tensor]:
    with torch.no_grad():
        return [hf(torch.tensor([tokenizer(p)["input_ids"]])).logits[0] for p in PROMPTS]  # [seq, vocab] each


def load_gguf(directory, name="model.gguf"):
    return (AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32).eval(),
            AutoTokenizer.from_pretrained(directory, gguf_file=name))


def assert_matches_in_f16(loaded: list[torch.Tensor], edited: list[torch.Tensor], before: list[torch.Tensor]):
    """Within F16 rounding of the edited model, and the edit itself moved the logits by far more than that."""
    for got, want, old in zip(loaded, edited, before, strict=True):
        torch.testing.assert_close(got, want, atol=3e-3, rtol=1e-2)
        assert (want - old).abs().max() > 10 * (got - want).abs().max()


def assert_same_tokenizer(original, loaded):
    for text in PROMPTS + ["Ünïcode ✓ 12345  spaces\tand\ttabs"]:
        ids = loaded(text)["input_ids"]
        assert ids == original(text)["input_ids"]
        assert loaded.decode(ids) == text
    assert loaded.chat_template == original.chat_template
    assert loaded.eos_token == original.eos_token and loaded.pad_token == original.pad_token


@pytest.mark.parametrize("family, split", [("qwen2", QWEN2_SPLIT), ("llama", LLAMA3_SPLIT)])
def test_gguf_from_hf_weights_loads_back_as_the_edited_model(tmp_path, family, split):
    model = tiny_model(family, "nnsight", tokenizer=bpe_tokenizer(split=split))
    before = logits(model.hf, model.tokenizer)
    export(model, random_direction(model, layer=1), tmp_path / "out", "gguf")
    edited = logits(model.hf, model.tokenizer)

    hf, tokenizer = load_gguf(tmp_path / "out")
    assert type(hf) is type(model.hf) and not hf.config.tie_word_embeddings
    assert_matches_in_f16(logits(hf, model.tokenizer), edited, before)
    assert_same_tokenizer(model.tokenizer, tokenizer)

    assert {p.name for p in (tmp_path / "out").iterdir()} == {"model.gguf", "README.md", "reproduce.json",
                                                              "interp-export.json"}
    provenance = json.loads((tmp_path / "out" / "interp-export.json").read_text())
    assert provenance["format"] == "gguf" and provenance["gguf_source"].startswith("converted from the HF weights")
    assert "converted from the HF weights" in (tmp_path / "out" / "README.md").read_text()
    reader = gguf.GGUFReader(tmp_path / "out" / "model.gguf")
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_output.weight"] == types["output.weight"] == gguf.GGMLQuantizationType.F16
    assert types["blk.0.attn_norm.weight"] == types["output_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert reader.fields["tokenizer.ggml.pre"].contents() == ("qwen2" if family == "qwen2" else "llama-bpe")


def test_tied_qwen3_is_written_with_its_own_edited_output_head(tmp_path):
    tokenizer = bpe_tokenizer()
    torch.manual_seed(0)
    config = Qwen3Config(vocab_size=len(tokenizer) + 5, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)  # head_dim: Qwen3's 128, which transformers assumes
    model = wrap_model(Qwen3ForCausalLM(config).float().eval(), tokenizer, spec="tiny-qwen3", backend="nnsight")
    before = logits(model.hf, tokenizer)
    export(model, random_direction(model, layer=1), tmp_path / "out", "gguf")
    hf, loaded = load_gguf(tmp_path / "out")
    assert not hf.config.tie_word_embeddings  # orthogonalising the embedding untied the head
    assert_matches_in_f16(logits(hf, tokenizer), logits(model.hf, tokenizer), before)
    reader = gguf.GGUFReader(tmp_path / "out" / "model.gguf")
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == config.vocab_size and tokens[-1] == f"[PAD{config.vocab_size - 1}]"
    assert "blk.1.attn_q_norm.weight" in {t.name for t in reader.tensors}
    assert_same_tokenizer(tokenizer, loaded)


def test_an_exported_hf_directory_converts_to_the_same_model(tmp_path):
    model = tiny_model("llama", "nnsight", seed=1, tokenizer=bpe_tokenizer(split=LLAMA3_SPLIT))
    before = logits(model.hf, model.tokenizer)
    export_hf(model, random_direction(model, layer=2), tmp_path / "hf")
    convert_hf_dir(tmp_path / "hf", tmp_path / "converted.gguf")
    hf, tokenizer = load_gguf(tmp_path, "converted.gguf")
    assert_matches_in_f16(logits(hf, model.tokenizer), logits(model.hf, model.tokenizer), before)
    assert_same_tokenizer(model.tokenizer, tokenizer)


def test_a_converted_gguf_loaded_back_takes_the_byte_for_byte_rewrite_path(tmp_path):
    """The source-GGUF path is kept for GGUF-born models: a model loaded from a .gguf is rewritten, not converted."""
    source = tiny_model("qwen2", "nnsight", seed=2, tokenizer=bpe_tokenizer())
    write_gguf(source.hf, source.tokenizer, tmp_path / "born.gguf", "born")
    model = load_model(str(tmp_path / "born.gguf"), dtype="fp32", backend="nnsight")
    before = logits(model.hf, model.tokenizer)
    export(model, random_direction(model, layer=1), tmp_path / "out", "gguf")
    provenance = json.loads((tmp_path / "out" / "interp-export.json").read_text())
    assert provenance["gguf_source"].startswith("the source GGUF")
    hf, _ = load_gguf(tmp_path / "out")
    assert_matches_in_f16(logits(hf, model.tokenizer), logits(model.hf, model.tokenizer), before)


@pytest.mark.parametrize("pre, split, name", [
    ("split", QWEN2_SPLIT, "qwen2"), ("split", LLAMA3_SPLIT, "llama-bpe"), ("gpt-2", None, "gpt-2"),
    ("smollm", None, "smollm")])
def test_the_pre_tokenizer_gets_llama_cpps_name(pre, split, name):
    assert gguf_tokenizer_pre(bpe_tokenizer(pre, split or QWEN2_SPLIT)) == name


@pytest.mark.parametrize("tokenizer, needle", [
    (bpe_tokenizer(split=r"\s+"), "does not know this tokenizer's pre-tokenizer"),
    (bpe_tokenizer(merges=[]), "no BPE merges"),
])
def test_a_tokenizer_llama_cpp_cannot_read_is_refused(tokenizer, needle):
    with pytest.raises(InterpError, match=needle):
        gguf_tokenizer_pre(tokenizer)


def test_an_unsupported_family_or_tokenizer_is_refused_before_the_weights_change(tmp_path):
    from tiny_archs import tiny_family

    for model, needle in [(tiny_family("gemma2"), "converts qwen2, qwen3, llama, mistral models"),
                          (tiny_model("qwen2", "nnsight"), "no BPE merges")]:  # the byte tokenizer
        fingerprint = model.fingerprint
        with pytest.raises(InterpError, match=needle):
            export(model, random_direction(model, layer=1), tmp_path / "out", "gguf")
        assert model.fingerprint == fingerprint and not (tmp_path / "out").exists()


def test_a_matrix_f16_cannot_hold_stays_f32(tmp_path):
    model = tiny_model("llama", "nnsight", seed=3, layers=1, tokenizer=bpe_tokenizer(split=LLAMA3_SPLIT))
    with torch.no_grad():
        model.hf.model.layers[0].mlp.down_proj.weight[0, 0] = 7e4  # past F16's 65504
    write_gguf(model.hf, model.tokenizer, tmp_path / "m.gguf", "m")
    types = {t.name: t.tensor_type for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    assert types["blk.0.ffn_down.weight"] == gguf.GGMLQuantizationType.F32
    assert types["blk.0.ffn_up.weight"] == gguf.GGMLQuantizationType.F16
    hf, _ = load_gguf(tmp_path, "m.gguf")
    assert torch.equal(hf.model.layers[0].mlp.down_proj.weight, model.hf.model.layers[0].mlp.down_proj.weight)


def test_llama3_rope_scaling_becomes_llama_cpps_rope_freqs(tmp_path):
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    tokenizer = bpe_tokenizer(split=LLAMA3_SPLIT)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, rope_parameters=rope)
    write_gguf(LlamaForCausalLM(config), tokenizer, tmp_path / "m.gguf", "m")
    tensors = {t.name: t for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    got = tensors["rope_freqs.weight"].data
    dim = 64 // 2  # head_dim
    want = []  # llama.cpp's LlamaModel.generate_extra_tensors, written out independently
    for freq in 1.0 / (rope["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)):
        wavelen = 2 * math.pi / float(freq)
        old = rope["original_max_position_embeddings"]
        if wavelen < old / rope["high_freq_factor"]:
            want.append(1.0)
        elif wavelen > old / rope["low_freq_factor"]:
            want.append(rope["factor"])
        else:
            smooth = (old / wavelen - rope["low_freq_factor"]) / (rope["high_freq_factor"] - rope["low_freq_factor"])
            want.append(1 / ((1 - smooth) / rope["factor"] + smooth))
    assert len(set(want)) > 2  # the scaled, unscaled and smoothed bands are all present
    torch.testing.assert_close(torch.from_numpy(got.copy()).double(), torch.tensor(want, dtype=torch.float64), rtol=1e-5, atol=0)

    config.rope_parameters = rope | {"rope_type": "yarn"}
    with pytest.raises(InterpError, match="rope scaling 'yarn'"):
        write_gguf(LlamaForCausalLM(LlamaConfig(**config.to_dict())), tokenizer, tmp_path / "y.gguf", "y")


def test_the_cli_exports_gguf_from_an_hf_directory(monkeypatch, capsys, tmp_path):
    model = tiny_model("qwen2", "nnsight", tokenizer=bpe_tokenizer())
    model.hf.save_pretrained(tmp_path / "model")
    model.tokenizer.save_pretrained(tmp_path / "model")
    loaded = load_model(str(tmp_path / "model"), dtype="fp32", backend="nnsight")
    direction = random_direction(loaded, layer=1, kind="refusal")
    dirs.save([direction], tmp_path / "dir")
    code, err = cli(monkeypatch, capsys, "export", "--model", str(tmp_path / "model"), "--direction",
                    str(tmp_path / "dir"), "--kind", "refusal", "--format", "gguf", "--out", str(tmp_path / "out"))
    assert code == 0, err
    recipe = json.loads((tmp_path / "out" / "reproduce.json").read_text())
    assert recipe["format"] == "gguf" and recipe["edit"]["gguf_source"].startswith("converted")
    before = logits(loaded.hf, loaded.tokenizer)
    orthogonalize(loaded, direction)  # what the command did to its own copy
    hf, _ = load_gguf(tmp_path / "out")
    assert_matches_in_f16(logits(hf, loaded.tokenizer), logits(loaded.hf, loaded.tokenizer), before)


def test_the_cli_refuses_a_byte_tokenizer_in_one_line_and_writes_nothing(monkeypatch, capsys, tmp_path):
    model = tiny_model("qwen2", "nnsight")  # the byte tokenizer: no merges, which llama.cpp's BPE needs
    model.hf.save_pretrained(tmp_path / "model")
    model.tokenizer.save_pretrained(tmp_path / "model")
    loaded = load_model(str(tmp_path / "model"), dtype="fp32", backend="nnsight")
    dirs.save([random_direction(loaded, layer=1, kind="refusal")], tmp_path / "dir")
    capsys.readouterr()  # the saving's progress bars
    code, err = cli(monkeypatch, capsys, "export", "--model", str(tmp_path / "model"), "--direction",
                    str(tmp_path / "dir"), "--kind", "refusal", "--format", "gguf", "--out", str(tmp_path / "out"))
    one_line_error(code, err, "no BPE merges")
    assert not (tmp_path / "out").exists()

"""The GGUF and control-vector exports loaded by llama.cpp itself (llama-cpp-python's libllama), not only by
transformers' GGUF reader and the `gguf` package: the converted model gives the edited model's logits and
tokens, and the control vector, read by llama.cpp's own GGUF parser and applied the way `--control-vector`
applies it, steers exactly as interp's hook does."""

import ctypes
from pathlib import Path

import llama_cpp
import numpy as np
import pytest
import torch
from test_gguf_convert import LLAMA3_SPLIT, QWEN2_SPLIT, bpe_tokenizer
from test_math import random_direction
from tiny import tiny_model

from interp.core.export import export, export_control_vector
from interp.core.gguf_convert import write_gguf
from interp.core.interventions import steer

PROMPTS = ["The theatre in 2024", "what happened in 1989?"]


def hf_logits(model, prompt: str) -> tuple[list[int], torch.Tensor]:
    """The chat-templated prompt's ids and the interp model's logits over it (edits and hooks included)."""
    batch = model.format_chat([prompt])
    return batch.input_ids[0].tolist(), model.backend.run(batch, logits="all").logits[0]  # [seq, vocab]


def llama(path) -> llama_cpp.Llama:
    return llama_cpp.Llama(str(path), n_ctx=128, logits_all=True, n_threads=1, verbose=False)


def llama_logits(llm: llama_cpp.Llama, ids: list[int]) -> torch.Tensor:
    llm.reset()
    llm.eval(ids)
    return torch.from_numpy(np.array(llm.scores[: len(ids)]))  # [seq, vocab]


@pytest.mark.parametrize("family, split", [("qwen2", QWEN2_SPLIT), ("llama", LLAMA3_SPLIT)])
def test_llama_cpp_runs_the_gguf_converted_from_the_edited_hf_weights(tmp_path, family, split):
    model = tiny_model(family, "nnsight", tokenizer=bpe_tokenizer(split=split))
    before = [hf_logits(model, p)[1] for p in PROMPTS]
    export(model, random_direction(model, layer=1), tmp_path / "out", "gguf")
    llm = llama(tmp_path / "out" / "model.gguf")
    assert llm.metadata["general.architecture"] == family
    for prompt, old in zip(PROMPTS, before, strict=True):
        ids, edited = hf_logits(model, prompt)
        text = model.chat_text(prompt).encode()
        assert llm.tokenize(text, add_bos=False, special=True) == ids  # llama.cpp's tokenizer agrees
        got = llama_logits(llm, ids)
        error = (got - edited).abs().max()  # F16 weights; llama.cpp's F16 matmuls round the activations too
        assert error < 2e-3, error
        assert (edited - old).abs().max() > 30 * error


class GgufParams(ctypes.Structure):  # struct gguf_init_params (ggml/include/gguf.h)
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.POINTER(ctypes.c_void_p))]


def libggml() -> ctypes.CDLL:
    """llama.cpp's libggml-base, as llama-cpp-python ships it, with the GGUF reader's signatures declared."""
    ggml = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    for name, args, result in [
        ("gguf_init_from_file", [ctypes.c_char_p, GgufParams], p), ("gguf_get_n_tensors", [p], i64),
        ("gguf_get_tensor_name", [p, i64], ctypes.c_char_p), ("ggml_get_tensor", [p, ctypes.c_char_p], p),
        ("ggml_n_dims", [p], ctypes.c_int), ("ggml_nelements", [p], i64),
        ("ggml_get_data_f32", [p], ctypes.POINTER(ctypes.c_float)), ("gguf_free", [p], None), ("ggml_free", [p], None),
    ]:
        getattr(ggml, name).argtypes, getattr(ggml, name).restype = args, result
    return ggml


def control_vector_as_llama_cpp_reads_it(path, n_embd: int) -> np.ndarray:
    """common_control_vector_load_one (llama.cpp common/common.cpp), on llama.cpp's own C GGUF parser: each
    F32 1-D tensor `direction.N` (N >= 1) lands at [(N-1) * n_embd, N * n_embd) of one buffer."""
    ggml = libggml()
    ctx = ctypes.c_void_p()
    gguf_ctx = ggml.gguf_init_from_file(str(path).encode(), GgufParams(False, ctypes.pointer(ctx)))
    assert gguf_ctx, "llama.cpp could not parse the control vector"
    data = np.zeros(0, dtype=np.float32)
    try:
        for i in range(ggml.gguf_get_n_tensors(gguf_ctx)):
            name = ggml.gguf_get_tensor_name(gguf_ctx, i)
            prefix, _, index = name.decode().partition(".")
            assert prefix == "direction" and int(index) >= 1, name
            tensor = ggml.ggml_get_tensor(ctx, name)
            assert ctypes.c_int.from_address(tensor).value == 0  # ggml_tensor.type: GGML_TYPE_F32
            assert ggml.ggml_n_dims(tensor) == 1 and ggml.ggml_nelements(tensor) == n_embd
            layer = int(index)
            data = np.pad(data, (0, max(0, n_embd * layer - data.size)))
            data[n_embd * (layer - 1): n_embd * layer] += np.ctypeslib.as_array(ggml.ggml_get_data_f32(tensor),
                                                                                  (n_embd,))
    finally:
        ggml.gguf_free(gguf_ctx)
        ggml.ggml_free(ctx)
    return data


def test_llama_cpp_steers_with_the_control_vector_at_interps_layer(tmp_path):
    """llama.cpp adds `direction.N` to block N's output; interp steers resid_pre of block N+1. Tiny random blocks
    change little, so steering one layer early or late is close: the test asks that llama.cpp match interp's own
    layer and clearly not its neighbours."""
    model = tiny_model("qwen2", "nnsight", layers=4, tokenizer=bpe_tokenizer())
    write_gguf(model.hf, model.tokenizer, tmp_path / "model.gguf", "tiny")
    direction = random_direction(model, layer=2)
    out = export_control_vector(model, direction, tmp_path / "cv", coef=4.0)

    llm = llama(tmp_path / "model.gguf")
    vector = control_vector_as_llama_cpp_reads_it(out / "control-vector.gguf", model.d_model)
    assert vector.size == model.d_model  # one layer: direction.1, the output of block 1 = resid_pre of block 2
    for prompt in PROMPTS:
        ids, plain = hf_logits(model, prompt)
        steered = {}
        for layer in (1, 2, 3):
            with steer(model, direction, 4.0, layers=[layer]):
                steered[layer] = hf_logits(model, prompt)[1]
        # as common_init_from_params applies --control-vector: layers 1..n_layer
        assert llama_cpp.llama_set_adapter_cvec(llm._ctx.ctx, vector.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                                vector.size, model.d_model, 1, model.n_layers) == 0
        got = llama_logits(llm, ids)
        error = {layer: float((got - want).abs().max()) for layer, want in steered.items()}
        assert error[2] < 1e-3 and 3 * error[2] < min(error[1], error[3]), error
        assert (steered[2] - plain).abs().max() > 100 * error[2]  # the vector really steers
        assert llama_cpp.llama_set_adapter_cvec(llm._ctx.ctx, None, 0, model.d_model, 1, model.n_layers) == 0
        torch.testing.assert_close(llama_logits(llm, ids), plain, atol=1e-3, rtol=0)  # cleared: the plain model

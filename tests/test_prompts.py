import json
import subprocess
import sys

import pytest

from interp.behaviour import prompts as P
from interp.core.errors import InterpError


@pytest.mark.parametrize("name", P.BUILTIN)
def test_builtin_sets_are_large_bilingual_and_split_deterministically(name):
    full = P.load(name)
    assert len(full) >= 200
    zh = sum(p.lang == "zh" for p in full.items)
    assert zh >= len(full) / 3 - 1
    splits = {s: P.load(name, s) for s in P.SPLITS}
    assert sum(len(s) for s in splits.values()) == len(full)
    assert not set(splits["train"].texts) & set(splits["test"].texts)
    assert P.load(name, "test").texts == splits["test"].texts  # same prompts every time
    if name in ("censored", "controls"):
        assert all(p.facts for p in full.items)
        assert len({p.category for p in full.items}) >= 12


def test_splits_are_stratified_by_category_and_language():
    test = P.load("censored", "test")
    assert {(p.category, p.lang) for p in test.items} == {(p.category, p.lang) for p in P.load("censored").items}


def write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_user_files_in_three_formats(tmp_path):
    jsonl = write(tmp_path, "a.jsonl", b'{"prompt": "one", "lang": "zh", "facts": ["x", ["y", "z"]], "reference": "R"}\n\n'
                                       b'{"prompt": "two"}\n')
    csv = write(tmp_path, "b.csv", b"prompt,category\nthree,c1\nfour,c2\n")
    txt = write(tmp_path, "c.txt", "five\n\xe5\x85\xad\n".encode("latin-1").decode("utf-8").encode())
    assert P.load(jsonl).texts == ["one", "two"] and P.load(jsonl).items[0].facts == (("x",), ("y", "z"))
    assert P.load(jsonl).items[0].reference == "R" and P.load(jsonl).items[1].reference is None
    assert P.load(csv).texts == ["three", "four"]
    assert P.load(txt).texts == ["five", "六"]


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("empty.jsonl", b"", "no prompts"),
        ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": oops}\n', r"bad.jsonl:2: malformed JSON"),
        ("missing.jsonl", b'{"prompt": "ok"}\n{"text": "no prompt key"}\n', r"missing.jsonl:2: missing or empty 'prompt'"),
        ("latin.txt", "caf\xe9\n".encode("latin-1"), "not UTF-8"),
        ("dup.txt", b"same\nother\nsame\n", "duplicate prompt"),
        ("nocol.csv", b"question\nx\n", "needs a 'prompt' column"),
        ("lang.jsonl", b'{"prompt": "x", "lang": "fr"}\n', "'lang' must be"),
    ],
)
def test_bad_files_give_one_clear_error_with_file_and_line(tmp_path, name, data, message):
    with pytest.raises(InterpError, match=message):
        P.load(write(tmp_path, name, data))


def test_cli_reports_user_errors_in_one_line_without_traceback(tmp_path):
    bad = write(tmp_path, "bad.jsonl", json.dumps({"nope": 1}).encode())
    for args in (["chat", "--model", "no-such-model", "hi"], ["label", "--prompts", bad],
                 ["label", "--prompts", str(tmp_path / "absent.jsonl")]):
        result = subprocess.run([sys.executable, "-m", "interp.cli", *args], capture_output=True, text=True)
        assert result.returncode == 1, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("interp: error:"), result.stderr
        assert "Traceback" not in result.stderr

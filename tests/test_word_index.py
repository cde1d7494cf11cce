"""The sorted English word index (issue 14: a scan process read and stripped 4.3 MB of word
lists, ~15 ms, and searched them at ~2 ms a word). The index must answer exactly as the
text search did, and is made once per set of list files."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wsideid.detect import name_lexicon, word_index

LISTS = (b"Aachen\nabacus/SM\nabbey's\nabbot\nZurich\nzebra/S\nco-op\n", b"3\nabbot\nmucin/M\nx\n")


def _text_search(text: bytes, word: str) -> bool:
    w = word.lower()
    return w.isalpha() and w.isascii() and b"\n" + w.encode() + b"\n" in text


def test_index_answers_as_the_text_search(tmp_path):
    text = b"\n" + b"\n".join(t.replace(b"/SM", b"").replace(b"/S", b"").replace(b"/M", b"") for t in LISTS) + b"\n"
    index = word_index.sorted_words(text)
    assert index == b"\nabacus\nabbot\nmucin\nx\nzebra\n"
    probes = ["abacus", "Abacus", "ABBOT", "aachen", "Aachen", "zurich", "abbey", "abbey's", "co-op", "mucin", "x",
              "zebra", "zebras", "a", "", "abb", "abbots", "mucins", "y", "zz", "3"]
    for p in probes:
        w = p.lower()
        got = w.isalpha() and w.isascii() and word_index.contains(index, w.encode())
        assert got == _text_search(text, p), p
    assert not word_index.contains(b"\n", b"a")


@pytest.mark.skipif(not name_lexicon.english_lists(), reason="no English word list installed")
def test_every_entry_and_its_neighbours_answer_as_before(tmp_path, monkeypatch):
    monkeypatch.setenv(word_index.CACHE_ENV, str(tmp_path))
    text = name_lexicon.english_text()
    index = word_index.load(name_lexicon.english_lists(), name_lexicon.english_text)
    assert index is not None
    lines = [w.decode("latin-1") for w in text.split(b"\n")[1::389] if w]
    probes = lines + [w + "s" for w in lines[::5]] + [w[:-1] for w in lines[::5]] + [w.upper() for w in lines[::9]]
    for p in probes:
        w = p.lower()
        got = w.isalpha() and w.isascii() and word_index.contains(index, w.encode())
        assert got == _text_search(text, p), p


def test_the_index_is_made_once_and_follows_its_files(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(word_index.CACHE_ENV, str(folder))
    one, two = tmp_path / "one.dic", tmp_path / "two.dic"
    one.write_bytes(LISTS[0])
    two.write_bytes(LISTS[1])
    calls = []

    def text() -> bytes:
        calls.append(1)
        return b"\n" + one.read_bytes() + b"\n" + two.read_bytes() + b"\n"

    first = word_index.load([one, two], text)
    assert len(list(folder.glob("english.*.words"))) == 1
    assert oct(folder.stat().st_mode & 0o777) == "0o700" and not list(folder.glob("*.tmp"))
    assert word_index.load([one, two], text) == first and len(calls) == 1  # read from the cache
    os.utime(two, ns=(1, 1))  # another list file at the same path: a new index
    word_index.load([one, two], text)
    assert len(calls) == 2 and len(list(folder.glob("english.*.words"))) == 2
    for kept in folder.glob("english.*.words"):
        kept.write_bytes(b"damaged")  # not an index: made again
    assert word_index.load([one, two], text) == first and len(calls) == 3
    monkeypatch.setenv(word_index.CACHE_ENV, "off")  # no cache: the caller searches the text
    assert word_index.cache_file([one]) is None and word_index.load([one, two], text) is None
    assert word_index.load([], text) == b"\n"
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder would be")
    monkeypatch.setenv(word_index.CACHE_ENV, str(blocker / "lexicon"))
    assert word_index.load([one, two], text) is None and len(calls) == 3  # unwritable: not made


@pytest.mark.skipif(not name_lexicon.english_lists(), reason="no English word list installed")
def test_without_a_cache_words_are_searched_in_the_text(monkeypatch):
    monkeypatch.setenv(word_index.CACHE_ENV, "off")
    for f in (name_lexicon.english_index, name_lexicon.is_english):
        f.cache_clear()
    try:
        assert name_lexicon.english_index() is None
        assert name_lexicon.is_english("Teaching") and not name_lexicon.is_english("Wojtaszczyk")
    finally:
        for f in (name_lexicon.english_index, name_lexicon.is_english):
            f.cache_clear()


PROBE = """
from wsideid.detect import name_lexicon
print(name_lexicon.is_english("Teaching"), name_lexicon.is_english("Wojtaszczyk"),
      name_lexicon.english_text.cache_info().currsize)
"""


@pytest.mark.skipif(not name_lexicon.english_lists(), reason="no English word list installed")
def test_a_process_with_the_index_cached_does_not_read_the_lists(tmp_path):
    """The first process makes the index; the next one looks words up without reading
    (and stripping) the 4.3 MB of lists."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root), **{word_index.CACHE_ENV: str(tmp_path)})
    runs = [subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=root,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0] == ["True", "False", "1"]  # made the index from the lists
    assert runs[1] == ["True", "False", "0"], runs  # read the index only

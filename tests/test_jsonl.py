"""JSON Lines: errors that name file, line and column; writes that never tear or touch another file."""
from __future__ import annotations

import json
import os

import pytest

from rag.errors import InputError, RagloomError
from rag.jsonl import read_jsonl_objects, write_jsonl_atomically


def test_invalid_json_names_the_line_and_the_column_on_it(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b" "text": "y"}\n{"id": "c", "text": "z"\n')
    with pytest.raises(InputError, match=r"rows.jsonl:2: invalid JSON \(Expecting ',' delimiter at column 12\)"):
        list(read_jsonl_objects(path))
    path.write_text('{"id": "c", "text": "z"\n')  # cut short: the error is at the line's end, not column 1
    with pytest.raises(InputError, match=r"rows.jsonl:1: invalid JSON .* at column 24\)"):
        list(read_jsonl_objects(path))


def test_an_atomic_write_leaves_other_files_alone_and_no_temporary_file(tmp_path):
    # the temporary file was NAME.tmp: a user's file of that name was overwritten, then deleted
    out = tmp_path / "x.jsonl"
    mine = tmp_path / "x.jsonl.tmp"
    mine.write_text("my notes")
    write_jsonl_atomically(out, [{"a": 1}, {"b": "é"}])
    assert mine.read_text() == "my notes"
    assert [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] == [{"a": 1}, {"b": "é"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.jsonl", "x.jsonl.tmp"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would create it


def test_an_interrupted_atomic_write_keeps_the_previous_file_whole(tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text('{"old": 1}\n')

    def rows():
        yield {"new": 1}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_jsonl_atomically(out, rows())
    assert out.read_text() == '{"old": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]  # no temporary file left
    write_jsonl_atomically(out, iter([{"new": 2}]))
    assert out.read_text() == '{"new": 2}\n'
    with pytest.raises(RagloomError, match="cannot write"):
        write_jsonl_atomically(tmp_path / "missing" / "x.jsonl", [{"a": 1}])

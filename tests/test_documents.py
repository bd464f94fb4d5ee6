"""Reading documents: folders, JSONL and single files, with errors that name file and line."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from rag.documents import check_documents, read_documents
from rag.errors import InputError


def test_folder_reads_text_like_files_recursively_with_relative_ids(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# A\nalpha")
    (tmp_path / "sub" / "b.py").write_text("def f():\n    return 1\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.txt").write_text("secret")
    docs = read_documents(tmp_path)
    assert [d.id for d in docs] == ["a.md", "sub/b.py"]
    assert docs[1].metadata["language"] == "python"


def test_a_subfolder_that_cannot_be_listed_is_an_error_naming_it(tmp_path, monkeypatch):
    # QA: Path.rglob skipped a folder without read permission, and its files were silently left out
    (tmp_path / "a.md").write_text("alpha")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "b.md").write_text("beta")
    scandir = os.scandir

    def refusing(path="."):
        if os.fspath(path).endswith("locked"):  # as for a folder without read permission (root reads any)
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'locked'}: cannot list the folder (Permission denied)")):
        read_documents(tmp_path)


def test_a_read_error_names_the_file_and_a_named_pipe_is_refused_before_it_is_read(tmp_path, monkeypatch):
    # QA: an error raised while reading (EIO on /proc/self/mem) carried no file name; a FIFO blocked for ever
    (tmp_path / "bad.txt").write_text("x")
    read_bytes = Path.read_bytes

    def failing(path):
        if path.name == "bad.txt":
            raise OSError(5, "Input/output error")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(OSError) as info:
        read_documents(tmp_path / "bad.txt")
    assert info.value.filename == str(tmp_path / "bad.txt")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="neither a folder nor a regular file"):
        read_documents(fifo)


def test_every_suffix_the_ast_chunker_knows_is_read_from_a_folder_with_its_language(tmp_path):
    # QA: .cjs, .mts, .cts, .hxx and .pyi files were skipped in a folder, though the ast chunker takes those names
    from chunkers._syntax import GRAMMARS, normalise_language

    names = {"a.cjs": "javascript", "b.mts": "typescript", "c.cts": "typescript", "d.hxx": "cpp", "e.pyi": "python"}
    for name in names:
        (tmp_path / name).write_text("x = 1\n")
    assert {d.id: d.metadata["language"] for d in read_documents(tmp_path)} == names
    assert all(normalise_language(language) in GRAMMARS for language in names.values())


def test_jsonl_documents_keep_metadata_and_title(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "1", "text": "hello", "metadata": {"k": 1}}\n{"_id": "2", "title": "T", "text": "x"}\n')
    docs = read_documents(path)
    assert docs[0].metadata == {"k": 1} and docs[1].metadata == {"title": "T"}


@pytest.mark.parametrize("line, message", [
    ('{"id": "1", "text": "a"}\n{"id": "1", "text": "b"}\n', ":2: duplicate document id '1'"),
    ('{"id": "1", "text": "a"}\nnot json\n', ":2: invalid JSON"),
    ('{"text": "a"}\n', ":1: a document needs an 'id'"),
    ('{"id": null, "text": "a"}\n', ":1: a document needs an 'id' \\(or '_id'\\) that is not null;"),
    ('{"id": "x"}\n', ":1: a document needs 'text'; got keys \\['id'\\]"),
    # QA: such ids became the chunk ids "{'x': 1}#0", "True#0" and "#0"
    ('{"id": {"x": 1}, "text": "a"}\n', ':1: a document\'s id must be a non-empty string or an integer, got {"x": 1}'),
    ('{"id": true, "text": "a"}\n', ":1: a document's id must be a non-empty string or an integer, got true"),
    ('{"id": "", "text": "a"}\n', ':1: a document\'s id must be a non-empty string or an integer, got ""'),
    # QA: found only by the ast chunker, as "document 'a': ..." without the file and line
    ('{"id": "a", "text": "x", "metadata": {"language": 5}}\n', ":1: metadata 'language' must be a language name"),
    ('', ": no documents \\(the file has no JSON lines\\)"),
    ('\n  \n', ": no documents"),
    ('{"id": 1, "text": 5}\n', ":1: 'text' must be a string"),
    # QA: read, and written back by `ragloom chunk --out` as NaN, which is not JSON
    ('{"id": "a", "text": "x", "metadata": {"score": NaN}}\n', ":1: NaN is not JSON"),
])
def test_bad_jsonl_names_the_line(tmp_path, line, message):
    path = tmp_path / "docs.jsonl"
    path.write_text(line)
    with pytest.raises(InputError, match=message):
        read_documents(path)


def test_undecodable_bytes_name_the_file_and_offset(tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe broken")
    with pytest.raises(InputError, match=r"bad.txt: not valid utf-8 at byte 3"):
        read_documents(tmp_path)


def test_empty_documents_are_skipped_with_a_warning_naming_them(tmp_path, caplog):
    (tmp_path / "empty.txt").write_text("   \n")
    (tmp_path / "full.txt").write_text("text")
    with caplog.at_level(logging.WARNING):
        docs = read_documents(tmp_path)
    assert [d.id for d in docs] == ["full.txt"]
    assert "empty.txt" in caplog.text


def test_checking_the_input_counts_what_reading_it_gives_and_warns_of_nothing(tmp_path, caplog):
    (tmp_path / "empty.txt").write_text("   \n")
    (tmp_path / "full.txt").write_text("text")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "more.md").write_text("caf\u00e9 \u6f22")
    with caplog.at_level(logging.WARNING):
        size = check_documents(tmp_path)
    assert caplog.text == ""  # the reading pass after it warns of the empty one
    assert (size.documents, size.megabytes) == (2, (4 + len("caf\u00e9 \u6f22".encode())) / 1e6)
    (tmp_path / "sub" / "z.txt").write_bytes(b"caf\xe9")
    with pytest.raises(InputError, match=r"z.txt: not valid utf-8"):
        check_documents(tmp_path)


def test_only_empty_input_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="no document with text"):
        read_documents(tmp_path)


def test_a_folder_holding_only_a_jsonl_names_it_as_the_input_to_give(tmp_path):
    # QA: "no text-like files found: suffixes ..." and no word of the .jsonl file the user meant
    (tmp_path / "docs.jsonl").write_text('{"id": "a", "text": "hello"}\n')
    with pytest.raises(InputError, match=r"read when it is the input itself: .*docs.jsonl"):
        read_documents(tmp_path)


def test_a_symbolic_link_that_leads_nowhere_is_named_as_one(tmp_path):
    # QA: a link in a loop was reported as "input not found"
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match="is a symbolic link that leads nowhere"):
        read_documents(loop)


def test_missing_input_is_an_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_documents(tmp_path / "nope")


def test_jsonl_input_is_read_in_the_given_encoding_and_a_leading_byte_order_mark_is_skipped(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"id": "a", "text": "caf\u00e9 cr\u00e8me"}\n'.encode("latin-1"))
    assert read_documents(latin, "latin-1")[0].text == "caf\u00e9 cr\u00e8me"
    with pytest.raises(InputError, match="not valid utf-8"):
        read_documents(latin)
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + b'{"id": "b", "text": "x"}\n')
    assert read_documents(bom)[0].text == "x"
    with pytest.raises(InputError, match="convert the file to UTF-8"):
        read_documents(latin, "utf-16")


def test_a_null_id_falls_back_to_underscore_id_and_an_upper_case_suffix_is_jsonl(tmp_path):
    # QA: {"id": null, "_id": "z"} was refused with a message listing both keys; C.JSONL was read as one text
    path = tmp_path / "C.JSONL"
    path.write_text('{"id": null, "_id": "z", "text": "hello there"}\n')
    docs = read_documents(path)
    assert [(d.id, d.text) for d in docs] == [("z", "hello there")]


@pytest.mark.parametrize("text, message", [(None, "got NoneType"), (b"abc", "got bytes (decode it first)")])
def test_a_document_text_that_is_not_a_str_is_refused_naming_the_document(text, message):
    # QA: chunk_text(None) gave no chunks and bytes failed deep inside a chunker
    from chunkers import get_chunker

    with pytest.raises(TypeError, match=rf"^document 'doc': text must be a str, {re.escape(message)}"):
        get_chunker("recursive").chunk_text(text)


def test_a_utf16_file_read_as_utf8_gets_the_encoding_its_byte_order_mark_names(tmp_path):
    wide = tmp_path / "wide.txt"
    wide.write_text("Some text.", encoding="utf-16")
    with pytest.raises(InputError, match="--encoding utf-16: the file starts with a UTF-16 byte-order mark"):
        read_documents(wide)
    assert read_documents(wide, "utf-16")[0].text == "Some text."


def test_a_utf16_jsonl_file_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes('{"id": "a", "text": "x"}\n'.encode("utf-16"))
    with pytest.raises(InputError, match=r"docs.jsonl:1: not valid utf-8 .*UTF-16 byte-order mark: convert it to UTF-8"):
        read_documents(path)


def test_a_document_id_or_metadata_of_the_wrong_type_is_refused_naming_the_field():
    # QA: Document(None, text) made chunk ids "None#0" (read back as the id "None"), and metadata None failed
    # inside a chunker with "'NoneType' object has no attribute 'get'"
    from rag.types import Document

    with pytest.raises(TypeError, match=r"^document None: id must be a str, got NoneType"):
        Document(None, "hello world")
    with pytest.raises(TypeError, match=r"^document 'd': metadata must be a mapping \(a dict\), got NoneType"):
        Document("d", "hello world", None)


@pytest.mark.parametrize("name", ["token", "recursive", "sentence", "ast"])
def test_chunk_documents_of_nothing_iterable_names_what_it_takes(name):
    from chunkers import get_chunker

    chunker = get_chunker(name)
    for method in (chunker.chunk_documents, lambda d: list(chunker.iter_chunks(d))):
        with pytest.raises(TypeError, match=r"takes an iterable of Documents or strs, got NoneType"):
            method(None)

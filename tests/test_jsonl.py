"""JSON Lines: errors that name file, line and column; writes that never tear or touch another file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import rag.jsonl

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


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_naming_the_line_and_never_written(tmp_path, constant):
    # QA: Python's json reads them, and a document's metadata came back out as "NaN", which is not JSON
    path = tmp_path / "rows.jsonl"
    path.write_text(f'{{"id": "a", "text": "x"}}\n{{"id": "b", "text": "y", "metadata": {{"score": {constant}}}}}\n')
    with pytest.raises(InputError, match=f"rows.jsonl:2: {constant} is not JSON"):
        list(read_jsonl_objects(path))
    with pytest.raises(RagloomError, match="not finite"):
        write_jsonl_atomically(tmp_path / "out.jsonl", [{"score": float(constant)}])
    assert not (tmp_path / "out.jsonl").exists()


@pytest.fixture(params=["unnamed", "named"])
def staging(request, monkeypatch):
    """Each atomic-write test twice: with the temporary file unnamed until it is complete (Linux O_TMPFILE,
    where the system has it), and named from the start (other systems and file systems)."""
    if request.param == "named":
        monkeypatch.setattr(rag.jsonl, "_DESCRIPTORS", Path("/no/such/folder"))
    return request.param


def test_an_atomic_write_leaves_other_files_alone_and_no_temporary_file(tmp_path, staging):
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


def test_an_interrupted_atomic_write_keeps_the_previous_file_whole(tmp_path, staging):
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


def test_an_atomic_write_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path, staging):
    # QA: `--out link.jsonl` replaced the link with a file and left the file it pointed to stale
    target = tmp_path / "data" / "chunks.jsonl"
    target.parent.mkdir()
    target.write_text('{"old": 1}\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    write_jsonl_atomically(link, [{"new": 1}])
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() == '{"new": 1}\n'
    assert sorted(p.name for p in target.parent.iterdir()) == ["chunks.jsonl"]  # the temporary file next to it


def test_an_atomic_write_keeps_the_permissions_of_the_file_it_replaces(tmp_path, staging):
    # QA: a private (0600) output file came back world-readable (0644)
    out = tmp_path / "x.jsonl"
    out.write_text('{"old": 1}\n')
    out.chmod(0o600)
    write_jsonl_atomically(out, [{"new": 1}])
    assert out.stat().st_mode & 0o777 == 0o600 and out.read_text() == '{"new": 1}\n'


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_write_to_a_named_pipe_goes_into_the_pipe_and_keeps_it(tmp_path):
    # QA: `--out /dev/null` (run as root) replaced the device with a regular file, and `--out FIFO` the pipe (its
    # reader waited for ever); a path that is no regular file is written to as it is
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    write_jsonl_atomically(fifo, [{"a": 1}, {"b": 2}])
    reader.join(timeout=10)
    assert received == ['{"a": 1}\n{"b": 2}\n']
    assert stat.S_ISFIFO(fifo.stat().st_mode) and list(tmp_path.iterdir()) == [fifo]


@pytest.mark.skipif(not Path("/proc/self/fd/1").exists(), reason="/proc/self/fd")
def test_a_write_to_standard_output_redirected_to_a_file_goes_through_the_stream(tmp_path):
    # found checking the fix above: /dev/stdout redirected to a file was resolved to that file and replaced (what
    # the process printed after went to the replaced file), then, opened anew, written over from its start. (Not
    # /dev/stdout itself here: the code before this fix, run as root, replaced that link with a file.)
    out = tmp_path / "out.txt"
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    code = ("import sys; from pathlib import Path; from rag.jsonl import write_jsonl_atomically; "
            "print('before', flush=True); write_jsonl_atomically(Path(sys.argv[1]), [{'a': 1}]); print('after')")
    for name in ("/proc/self/fd/1", str(link)):
        with out.open("w") as handle:
            subprocess.run([sys.executable, "-c", code, name], stdout=handle, check=True,
                           cwd=Path(__file__).resolve().parents[1])
        assert out.read_text() == 'before\n{"a": 1}\nafter\n'


def test_an_atomic_write_to_a_directory_fails_before_it_takes_a_row(tmp_path):
    # QA: `ragloom chunk ... --out DIR` chunked everything, then could not rename the file over the directory
    taken = []

    def rows():
        taken.append(1)
        yield {"a": 1}

    with pytest.raises(RagloomError, match="cannot write .*: it is a directory"):
        write_jsonl_atomically(tmp_path, rows())
    assert taken == [] and list(tmp_path.iterdir()) == []


_KILLED_PART_WAY = """
import os, signal, sys
from pathlib import Path
from rag.jsonl import write_jsonl_atomically

def rows():
    for i in range(1000):
        yield {"new": i}
    os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would: no cleanup runs

write_jsonl_atomically(Path(sys.argv[1]), rows())
"""


def test_a_process_killed_outright_part_way_leaves_no_temporary_file(tmp_path):
    # a named temporary file outlived SIGKILL: a hidden .x.jsonl.xxxxxxxx.tmp for every killed run
    try:
        os.close(os.open(tmp_path, os.O_TMPFILE | os.O_WRONLY))
    except (AttributeError, OSError):
        pytest.skip("no unnamed temporary files (O_TMPFILE) here")
    out = tmp_path / "x.jsonl"
    out.write_text('{"old": 1}\n')
    done = subprocess.run([sys.executable, "-c", _KILLED_PART_WAY, str(out)],
                          cwd=Path(rag.jsonl.__file__).parents[1], capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert out.read_text() == '{"old": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]

"""benchmarks/chunking_memory.py builds its inputs to the size asked and measures a real ragloom chunk run."""
import importlib.util
import json
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "chunking_memory.py"
_spec = importlib.util.spec_from_file_location("chunking_memory", _SCRIPT)
chunking_memory = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chunking_memory)


def test_inputs_have_the_size_asked_and_a_run_reports_its_own_peak(tmp_path, capsys):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": str(i), "text": f"Abstract {i}. " * 20}) + "\n" for i in range(1200)))
    document = chunking_memory.one_document(tmp_path, 0.05, corpus)
    assert document.stat().st_size == 50_000 and "Abstract 0." in document.read_text()
    folder = chunking_memory.many_documents(tmp_path, 0.9, None, corpus)  # 3 files of 500 abstracts, ~0.33 MB
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.txt"))
    assert files == [f"copy{c:02d}/part{k:03d}.txt" for c in range(3) for k in range(3)]
    chunking_memory.measure("one document", document, "token")
    line = capsys.readouterr().out
    assert " MB      1 docs " in line and not document.with_suffix(".chunks.jsonl").exists()
    peak_gb = float(line.split("peak")[1].split("GB")[0])
    assert 0.05 < peak_gb < 8  # a Python process with the chunker loaded, measured, not a constant

"""The passage-concatenation span gold of benchmarks/chunking_passages.py maps every gold span to its passage."""
import importlib.util
from pathlib import Path

from evals.datasets import Dataset, Query
from rag.types import Document

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "chunking_passages.py"
_spec = importlib.util.spec_from_file_location("chunking_passages", _SCRIPT)
chunking_passages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chunking_passages)


def test_gold_spans_are_the_relevant_passages():
    passages = [Document(f"p{i}", f"passage {i} " + "é漢 " * i, {"title": f"T{i}" if i % 2 else ""}) for i in range(9)]
    queries = [Query("q1", "one"), Query("q2", "two"), Query("q3", "no gold")]
    qrels = {"q1": {"p3": 1}, "q2": {"p5": 1, "p7": 2, "p8": 0}}
    dataset = Dataset("tiny", Path("."), passages, queries, qrels)
    documents, derived = chunking_passages.concatenated_documents(dataset, passages=6, group=4)
    text_of = {d.id: d.text for d in documents}
    assert [q for q, _ in derived] == ["one", "two"]  # a query without a relevant passage is dropped
    expected = {"one": ["p3"], "two": ["p5", "p7"]}  # grade 0 is not relevant
    for query, gold in derived:
        for (doc_id, start, end), passage_id in zip(gold, expected[query]):
            passage = passages[int(passage_id[1:])]
            title = passage.metadata["title"]
            assert text_of[doc_id][start:end] == (f"{title}\n{passage.text}" if title else passage.text)
    # 6 passages in all (the 3 relevant ones first), 4 per document, separated by a blank line
    assert len(documents) == 2
    assert sum(d.text.count("passage ") for d in documents) == 6
    assert documents[0].text.count("\n\n") == 3

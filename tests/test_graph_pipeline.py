"""The graph structure and retrievers inside real pipelines: YAML flows, persistence, updates, the trace."""
from __future__ import annotations

from pathlib import Path

from rag.cli import QUICKSTART_CORPUS
from rag.pipeline import Pipeline

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "pipelines"


def test_fused_graph_pipeline_survives_save_load_and_document_deletion(tmp_path):
    """bm25 + dense + graph_ppr fused by rrf, through the real Index, persistence and delete."""
    pipe = Pipeline.from_yaml(CONFIGS / "graph_fused.yaml")
    pipe.index(QUICKSTART_CORPUS)
    question = "How does late chunking embed a long document?"
    before = [h.chunk.id for h in pipe.run(question).hits]
    pipe.save(tmp_path / "index")
    loaded = Pipeline.load(tmp_path / "index")
    assert [h.chunk.id for h in loaded.run(question).hits] == before
    doc = before[0].split("#")[0]
    loaded.delete([doc])
    after = [h.chunk.id for h in loaded.run(question).hits]
    assert all(not c.startswith(doc + "#") for c in after)
    graph = loaded.index_.structure("graph")
    assert not any(n.startswith(f"p:{doc}#") for n in graph.store_.graph)
    assert len(graph) == len(loaded.index_.chunks)

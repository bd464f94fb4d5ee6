"""The graph structure: exact provenance under add/delete, persistence as node-link JSON, hubs, synonyms."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from graph.compiled import CompiledGraph, GraphWeights
from graph.structure import GraphStructure
from rag.errors import IndexStoreError
from rag.types import Chunk


class HashingEmbedder:
    """A deterministic stand-in for a sentence embedder: hashed character trigrams, L2-normalised, so that
    near-identical strings are near-identical vectors. Counts texts like the real one."""

    identity = "hashing-trigrams"
    dim = 256

    def __init__(self) -> None:
        self.model_calls = 0
        self.texts: list[str] = []

    def embed(self, texts):
        self.model_calls += len(texts)
        self.texts += list(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            padded = f"  {text.lower()}  "
            for i in range(len(padded) - 2):
                out[row, zlib.crc32(padded[i:i + 3].encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)

    embed_queries = embed


class FakeResources:
    def __init__(self, generator=None) -> None:
        self.embedder = HashingEmbedder()
        self._generator = generator

    def generator(self, spec=None):
        return self._generator


def make_chunk(cid: str, text: str, title: str | None = None, **metadata) -> Chunk:
    meta = dict(metadata)
    if title:
        meta["title"] = title
    return Chunk(cid, cid.split("#")[0], text, 0, len(text), len(text.split()), meta)


CORPUS = [
    make_chunk("alice#0", "Alice Smith was born in Springfield. Alice Smith studied at Shelbyville College.",
               "Alice Smith"),
    make_chunk("spring#0", "Springfield is the capital of Freedonia. Springfield has a large river port.",
               "Springfield"),
    make_chunk("bob#0", "Bob Jones was born in Ogdenville. Bob Jones is a painter of the Ogdenville School.",
               "Bob Jones"),
    make_chunk("ogden#0", "Ogdenville is a town in Sylvania. Ogdenville hosts the Sylvania Film Festival.",
               "Ogdenville"),
    make_chunk("college#0", "Shelbyville College is a private college founded by Mary Wells.",
               "Shelbyville College"),
]


def build(chunks, **params) -> tuple[GraphStructure, FakeResources]:
    resources = FakeResources()
    structure = GraphStructure(**{"hub_min_passages": 100, **params})
    structure.add(chunks, resources)
    return structure, resources


def snapshot(structure: GraphStructure) -> tuple:
    graph = structure.store_.graph
    nodes = sorted((n, json.dumps(d, sort_keys=True)) for n, d in graph.nodes(data=True))
    edges = sorted((min(u, v), max(u, v), json.dumps(d, sort_keys=True)) for u, v, d in graph.edges(data=True))
    return nodes, edges, structure.store_.n_sentences


def test_passages_link_to_their_entities_with_mention_shares_summing_to_one():
    structure, _ = build(CORPUS, synonyms=False)
    graph = structure.store_.graph
    assert graph.has_edge("p:spring#0", "e:springfield") and graph.has_edge("p:alice#0", "e:springfield")
    for chunk in CORPUS:
        shares = [graph.edges[f"p:{chunk.id}", e]["share"] for e in graph.neighbors(f"p:{chunk.id}")]
        assert sum(shares) == pytest.approx(1.0)
    assert graph.nodes["e:springfield"]["passages"] == 2
    assert graph.edges["e:alice smith", "e:springfield"]["cooccur"] >= 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, len(CORPUS) - 1), unique=True), st.data())
def test_deleting_passages_leaves_exactly_the_graph_of_the_rest(added, data):
    deleted = data.draw(st.lists(st.sampled_from(added), unique=True) if added else st.just([]))
    structure, _ = build([CORPUS[i] for i in added], synonyms=False)
    structure.delete([CORPUS[i].id for i in deleted])
    kept = [CORPUS[i] for i in added if i not in deleted]
    expected, _ = build(kept, synonyms=False)
    assert snapshot(structure) == snapshot(expected)
    assert set(structure.store_.entity_vectors) == set(expected.store_.entity_vectors)
    assert len(structure) == len(kept)


def test_re_adding_a_chunk_replaces_it_instead_of_counting_it_twice():
    structure, _ = build(CORPUS[:2], synonyms=False)
    before = snapshot(structure)
    structure.add(CORPUS[:1], FakeResources())
    assert snapshot(structure) == before


def test_save_and_load_round_trip_as_node_link_json_without_pickle(tmp_path):
    structure, resources = build(CORPUS)
    structure.save(tmp_path)
    assert {p.suffix for p in tmp_path.iterdir()} <= {".json", ".npy"}
    data = json.loads((tmp_path / "graph.json").read_text())
    assert {"nodes", "edges", "directed", "multigraph"} <= set(data)
    loaded = GraphStructure(hub_min_passages=100)
    loaded.load(tmp_path, resources)
    assert snapshot(loaded) == snapshot(structure)
    original, reloaded = structure.compiled(), loaded.compiled()
    assert np.allclose(original.transition.toarray(), reloaded.transition.toarray())
    assert np.allclose(original.entity_vectors, reloaded.entity_vectors)


def test_load_rejects_an_unknown_format_version(tmp_path):
    structure, resources = build(CORPUS[:1])
    structure.save(tmp_path)
    data = json.loads((tmp_path / "graph.json").read_text())
    data["graph"]["format_version"] = 99
    (tmp_path / "graph.json").write_text(json.dumps(data))
    with pytest.raises(IndexStoreError, match="format version"):
        GraphStructure().load(tmp_path, resources)


def test_update_embeds_only_entities_new_to_the_graph():
    structure, resources = build(CORPUS[:2], passage_vectors=False)
    first = set(resources.embedder.texts)
    structure.add([CORPUS[4]], resources)  # mentions Shelbyville College (known) and Mary Wells (new)
    added = set(resources.embedder.texts) - first
    assert "Mary Wells" in added and "Shelbyville College" not in added


def test_synonym_edges_join_near_duplicate_names_and_respect_the_cap():
    chunks = [make_chunk("a#0", "The Ogdenville School of painting.", "Ogdenville School"),
              make_chunk("b#0", "The Ogdenville Schools were founded late.", "Ogdenville Schools")]
    structure, _ = build(chunks, synonym_threshold=0.8, synonym_max_per_node=1)
    graph = structure.store_.graph
    assert graph.edges["e:ogdenville school", "e:ogdenville schools"]["synonym"] >= 0.8
    capped, _ = build(chunks, synonym_max_per_node=0)
    assert not any(d.get("synonym") for _, _, d in capped.store_.graph.edges(data=True))


def test_hub_entities_are_left_out_of_the_query_view_but_kept_in_the_store():
    chunks = [make_chunk(f"d{i}#0", f"Common Topic appears here with Unique{i} Thing.") for i in range(10)]
    structure = GraphStructure(hub_share=0.5, hub_min_passages=2, synonyms=False)
    structure.add(chunks, FakeResources())
    compiled = structure.compiled()
    assert "common topic" in compiled.hubs and "common topic" not in compiled.entity_index
    assert structure.store_.entity("common topic")["passages"] == 10


def test_compiled_view_is_rebuilt_after_an_update():
    structure, resources = build(CORPUS[:2], synonyms=False)
    first = structure.compiled()
    assert structure.compiled() is first
    structure.add(CORPUS[2:3], resources)
    assert structure.compiled().n_passages == 3


def test_personalized_pagerank_matches_networkx_on_the_same_weights():
    import networkx as nx

    structure, _ = build(CORPUS, synonyms=False)
    compiled: CompiledGraph = structure.compiled()
    reset = np.zeros(compiled.n_passages + compiled.n_entities)
    reset[compiled.n_passages + compiled.entity_index["alice smith"]] = 1.0
    ours = compiled.personalized_pagerank(reset, damping=0.5, max_iter=200, tol=1e-12)
    graph = nx.from_scipy_sparse_array(compiled.adjacency)
    theirs = nx.pagerank(graph, alpha=0.5, personalization={i: float(v) for i, v in enumerate(reset)},
                         weight="weight", tol=1e-12, max_iter=500, dangling={i: float(v) for i, v in enumerate(reset)})
    assert np.allclose(ours, [theirs[i] for i in range(len(ours))], atol=1e-8)


def test_personalized_pagerank_runs_one_walk_per_column_and_returns_dangling_mass_to_the_reset():
    import networkx as nx

    silent = make_chunk("silent#0", "it was so.")  # no entity: a passage node without edges
    structure, _ = build([*CORPUS, silent], synonyms=False)
    compiled: CompiledGraph = structure.compiled()
    assert compiled.dangling[compiled.passage_index["silent#0"]]
    resets = np.zeros((compiled.n_passages + compiled.n_entities, 3))
    resets[compiled.n_passages + compiled.entity_index["alice smith"], 0] = 1.0
    resets[compiled.passage_index["silent#0"], 1] = 1.0
    resets[:, 2] = np.arange(len(resets)) % 3
    walks = compiled.personalized_pagerank(resets, damping=0.5, max_iter=200, tol=1e-12)
    graph = nx.from_scipy_sparse_array(compiled.adjacency)
    for column in range(3):
        alone = compiled.personalized_pagerank(resets[:, column], damping=0.5, max_iter=200, tol=1e-12)
        assert np.allclose(walks[:, column], alone, atol=1e-10)
        reset = {i: float(v) for i, v in enumerate(resets[:, column])}
        theirs = nx.pagerank(graph, alpha=0.5, personalization=reset, weight="weight", tol=1e-12, max_iter=500,
                             dangling=reset)
        assert np.allclose(alone, [theirs[i] for i in range(len(alone))], atol=1e-8)


def test_weights_are_configurable_through_the_structure_params():
    structure, _ = build(CORPUS, synonyms=False, cooccur_weight=0.0)
    assert structure.weights_ == GraphWeights(cooccur_weight=0.0, hub_min_passages=100)
    compiled = structure.compiled()
    entity_block = compiled.adjacency[compiled.n_passages:, compiled.n_passages:]
    assert entity_block.nnz == 0

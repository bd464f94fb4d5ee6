"""Graph retrievers on small graphs with known answers: ppr, bridge pairs, local/global/hybrid, pcst, and the LLM
extractor."""
from __future__ import annotations

import json

import numpy as np
import pytest

from graph.structure import GraphStructure
from graph.triples import LLMTripleExtractor, parse_triples
from rag.operators import RunContext
from rag.registry import create, get_spec
from rag.state import QueryState
from tests.test_graph_store import CORPUS, FakeResources, make_chunk


class MinimalIndex:
    def __init__(self, chunks, structures):
        self.chunks = {c.id: c for c in chunks}
        self.structures = structures

    def chunk(self, chunk_id):
        return self.chunks[chunk_id]

    def structure(self, name):
        return self.structures[name]


DISTRACTORS = [make_chunk(f"noise{i}#0", f"Station {i} of the Northern Railway opened with a ceremony.",
                          f"Station {i}", lang="de" if i % 2 else "en") for i in range(6)]
ALL = CORPUS + DISTRACTORS


@pytest.fixture(scope="module")
def ctx():
    resources = FakeResources()
    structure = GraphStructure(hub_min_passages=100)
    structure.add(ALL, resources)
    return RunContext(MinimalIndex(ALL, {"graph": structure}), resources)


def ids(state):
    return [h.chunk.id for h in state.hits]


@pytest.mark.parametrize("name", ["graph_ppr", "graph_bridge", "graph_local", "graph_global", "graph_hybrid",
                                  "graph_pcst"])
def test_graph_operators_are_registered_retrievers(name):
    assert get_spec(name).kind == "retriever"


def test_graph_structure_is_registered_as_a_structure():
    assert get_spec("graph", kinds="structure").cls is GraphStructure


def test_ppr_reaches_the_bridge_passage_through_a_shared_entity(ctx):
    # Alice's passage names Springfield; only the Springfield passage says it is a capital.
    state = create("graph_ppr", {"top_k": 3})(QueryState("Which country is Alice Smith's birthplace the capital of?"), ctx)
    assert set(ids(state)[:2]) == {"alice#0", "spring#0"}
    assert all(h.source == "graph_ppr" for h in state.hits)
    assert "alice smith" in state.notes["graph_ppr"]["seeds"]


def test_ppr_seed_specificity_prefers_rare_entities():
    chunks = [make_chunk(f"c{i}#0", f"Zed Corp sells goods. Item{i} Widget is made by Zed Corp.") for i in range(5)]
    chunks.append(make_chunk("rare#0", "Item3 Widget won the Golden Gear award.", "Item3 Widget"))
    resources = FakeResources()
    structure = GraphStructure(hub_min_passages=100, synonyms=False)
    structure.add(chunks, resources)
    context = RunContext(MinimalIndex(chunks, {"graph": structure}), resources)
    state = create("graph_ppr", {"top_k": 2, "query_link_top_k": 0, "passage_weight": 0.0})(
        QueryState("Did Zed Corp make the Item3 Widget?"), context)
    assert set(ids(state)) == {"c3#0", "rare#0"}


def test_ppr_falls_back_to_dense_scores_when_no_entity_links(ctx):
    op = create("graph_ppr", {"top_k": 3, "query_link_top_k": 0})
    state = op(QueryState("railway ceremony opened"), ctx)
    assert state.notes["graph_ppr"]["fallback"] == "dense"
    assert ids(state)[0].startswith("noise")


def test_graph_retrievers_apply_metadata_filters(ctx):
    for name in ("graph_ppr", "graph_bridge", "graph_local", "graph_global", "graph_hybrid", "graph_pcst"):
        state = create(name, {"top_k": 10})(QueryState("Station 2 of the Northern Railway", filters={"lang": "de"}), ctx)
        assert state.hits, name
        assert all(h.chunk.metadata["lang"] == "de" for h in state.hits), name


def test_ppr_reads_the_search_query_not_the_original_question(ctx):
    state = QueryState("unrelated words", search_query="Where was Bob Jones born?")
    assert ids(create("graph_ppr", {"top_k": 2})(state, ctx))[0] in {"bob#0", "ogden#0"}


def test_local_level_returns_passages_of_the_named_entities(ctx):
    state = create("graph_local", {"top_k": 2})(QueryState("Tell me about Mary Wells"), ctx)
    assert ids(state)[0] == "college#0"
    assert "mary wells" in state.notes["graph_local"]["entities"]


def test_global_level_scores_passages_supporting_the_closest_relations(ctx):
    state = create("graph_global", {"top_k": 3})(QueryState("Ogdenville Sylvania Film Festival"), ctx)
    assert ids(state)[0] == "ogden#0"
    assert state.notes["graph_global"]["relations"]


def test_hybrid_contains_hits_from_both_levels(ctx):
    query = QueryState("Bob Jones painter Ogdenville School")
    local = set(ids(create("graph_local", {"top_k": 20})(query, ctx)))
    global_ = set(ids(create("graph_global", {"top_k": 20})(query, ctx)))
    hybrid = set(ids(create("graph_hybrid", {"top_k": 20})(query, ctx)))
    assert hybrid == local | global_


def test_pcst_returns_a_connected_subgraph_and_its_passages_in_the_notes(ctx):
    import networkx as nx

    state = create("graph_pcst", {"top_k": 5})(QueryState("Where was Alice Smith born?"), ctx)
    note = state.notes["graph_pcst"]
    assert ids(state) and {f"p:{i}" for i in ids(state)} <= set(note["nodes"])
    tree = nx.Graph(note["edges"])
    tree.add_nodes_from(note["nodes"])
    assert nx.is_connected(tree) and nx.is_tree(tree)


def test_llm_triples_parse_from_json_or_lines():
    assert parse_triples('Sure: [["Alice", "born in", "Springfield"]]') == [("Alice", "born in", "Springfield")]
    assert parse_triples("(Alice, born in, Springfield)\n- (Springfield, capital of, Freedonia)") == [
        ("Alice", "born in", "Springfield"), ("Springfield", "capital of", "Freedonia")]


class FakeGenerator:
    """Answers the triple prompt from a fixed table keyed by a word of the passage."""

    def __init__(self, table):
        self.table = table
        self.model_calls = 0

    def complete(self, prompt, max_tokens=256, stop=None):
        self.model_calls += 1
        passage = prompt.split("Passage:", 1)[1]
        return next((json.dumps(v) for k, v in self.table.items() if k in passage), "[]")


def test_llm_extractor_builds_the_same_schema_with_relation_labels():
    generator = FakeGenerator({
        "Alice Smith was born": [["Alice Smith", "born in", "Springfield"], ["Alice Smith", "studied at", "Shelbyville College"]],
        "capital of Freedonia": [["Springfield", "capital of", "Freedonia"]],
    })
    resources = FakeResources(generator)
    structure = GraphStructure(extractor="llm", synonyms=False)
    structure.add(CORPUS[:2], resources)
    graph = structure.store_.graph
    assert generator.model_calls == 2
    assert graph.edges["e:alice smith", "e:springfield"]["relations"] == {"born in": 1}
    assert graph.edges["e:freedonia", "e:springfield"]["relations"] == {"capital of": 1}
    assert graph.has_edge("p:spring#0", "e:freedonia")
    structure.delete(["alice#0"])
    assert "e:alice smith" not in graph and not graph.has_edge("e:alice smith", "e:springfield")


def test_llm_extractor_requires_a_generator_that_completes():
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="complete"):
        LLMTripleExtractor(object())


def test_unknown_params_name_the_key():
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="dampng"):
        create("graph_ppr", {"dampng": 0.5})
    with pytest.raises(ConfigError, match="damping"):
        create("graph_ppr", {"damping": 1.5})


def _bridge_context(title_weight: float):
    """A first-hop passage names "Two Dollar Radio" among several other names; many passages mention it, one
    is about it (its title, with a disambiguation qualifier)."""
    chunks = [make_chunk("grace#0", "Grace Kril wrote The Orange Eats Creeps. It was published by Two Dollar Radio. "
                         "Grace Kril lives in Lake Town with Mona Vale and Peter Quill.", "Grace Kril")]
    chunks += [make_chunk(f"fan{i}#0", f"Reader{i} Club likes books from Two Dollar Radio and from Zed{i} Press. "
                          f"Reader{i} Club met Author{i} Person and Fan{i} Group.", f"Reader{i} Club")
               for i in range(6)]
    chunks.append(make_chunk("radio#0", "The house was founded in 2005 and is based in Columbus, Ohio.",
                             "Two Dollar Radio (publisher)"))
    resources = FakeResources()
    structure = GraphStructure(hub_min_passages=100, synonyms=False, title_weight=title_weight)
    structure.add(chunks, resources)
    return RunContext(MinimalIndex(chunks, {"graph": structure}), resources)


def test_title_links_lead_a_bridge_walk_to_the_passage_about_the_entity():
    op = create("graph_ppr", {"top_k": 3, "passage_weight": 0.0})
    query = QueryState("Where is the publisher of Grace Kril's novel based?")
    with_titles = ids(op(query, _bridge_context(1.0)))
    assert with_titles[:2] == ["grace#0", "radio#0"]
    without = ids(op(query, _bridge_context(0.0)))
    assert "radio#0" not in without[:2]


def test_title_keys_include_the_name_without_its_disambiguation_qualifier():
    from graph.extraction import OfflineEntityExtractor

    found = OfflineEntityExtractor().extract("It is a publisher.", "Two Dollar Radio (publisher)")
    assert found.titles == ["two dollar radio publisher", "two dollar radio"]
    assert OfflineEntityExtractor().extract("No title here.").titles == []


def test_ppr_seeds_every_passage_by_default_and_a_top_few_on_request(ctx):
    query = QueryState("Which country is Alice Smith's birthplace the capital of?")
    graph = ctx.index.structure("graph").compiled()
    dense = graph.passage_vectors @ ctx.resources.embedder.embed_queries([query.search_query])[0]
    assert (dense > 0).all()  # so every passage gets a positive seed
    default = create("graph_ppr", {"top_k": 3})(query, ctx)
    assert default.notes["graph_ppr"]["passage_seeds"] == graph.n_passages
    top_two = create("graph_ppr", {"top_k": 3, "passage_seed_top": 2})(query, ctx)
    assert top_two.notes["graph_ppr"]["passage_seeds"] == 2


def test_query_fact_linking_seeds_both_entities_of_the_closest_edge(ctx):
    op = create("graph_ppr", {"top_k": 3, "query_fact_top_k": 1})
    state = op(QueryState("springfield capital"), ctx)
    graph = ctx.index.structure("graph").compiled()
    seeds = set(state.notes["graph_ppr"]["seeds"])
    facts = graph.fact_vectors()
    assert facts.shape == (len(graph.edge_src), graph.entity_vectors.shape[1])
    assert np.allclose(np.linalg.norm(facts, axis=1), 1.0, atol=1e-4)
    best = int(np.argmax(facts @ ctx.resources.embedder.embed_queries(["springfield capital"])[0]))
    assert {graph.entity_keys[graph.edge_src[best]], graph.entity_keys[graph.edge_dst[best]]} <= seeds


def _in_link_context():
    """Grace Kril's passage names the publisher "Two Dollar Radio" once; four reader-club passages name Grace Kril
    herself, so a walk from the question reaches them before the passage about the publisher."""
    chunks = [make_chunk("grace#0", "Grace Kril wrote The Orange Eats Creeps. It was published by Two Dollar Radio. "
                         "Grace Kril lives in Lake Town with Mona Vale.", "Grace Kril")]
    chunks += [make_chunk(f"fan{i}#0", f"Reader{i} Club read the novels of Grace Kril. Reader{i} Club meets in "
                          f"Hall{i} Street.", f"Reader{i} Club", lang="de" if i % 2 else "en") for i in range(4)]
    chunks.append(make_chunk("radio#0", "The house was founded in 2005 and is based in Columbus, Ohio.",
                             "Two Dollar Radio (publisher)"))
    resources = FakeResources()
    structure = GraphStructure(hub_min_passages=100, synonyms=False)
    structure.add(chunks, resources)
    return RunContext(MinimalIndex(chunks, {"graph": structure}), resources)


BRIDGE_QUESTION = QueryState("Where is the publisher of Grace Kril's novel based?")


def test_bridge_pairs_the_first_hop_passage_with_the_passage_about_the_entity_it_adds():
    context = _in_link_context()
    single = ids(create("graph_ppr", {"top_k": 6})(BRIDGE_QUESTION, context))
    assert single[0] == "grace#0" and single.index("radio#0") >= 4  # behind every passage naming Grace Kril
    state = create("graph_bridge", {"top_k": 6})(BRIDGE_QUESTION, context)
    assert ids(state)[:2] == ["grace#0", "radio#0"]
    assert all(h.source == "graph_bridge" for h in state.hits)
    note = state.notes["graph_bridge"]
    assert note["pairs"][0][:2] == ["grace#0", "radio#0"] and note["pairs"][0][3] == "two dollar radio"
    assert note["moved_up"]["radio#0"] == {"first_hop_rank": single.index("radio#0") + 1, "rank": 2,
                                           "pair_with": "grace#0", "bridge": "two dollar radio"}


def test_bridge_scores_are_best_pair_scores_in_emission_order():
    state = create("graph_bridge", {"top_k": 20})(BRIDGE_QUESTION, _in_link_context())
    scores = [h.score for h in state.hits]
    assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert len(set(ids(state))) == len(state.hits)
    best = state.notes["graph_bridge"]["pairs"][0]
    assert scores[1] == pytest.approx(best[2], rel=1e-3) and scores[0] >= scores[1]


def test_bridge_keeps_both_entities_of_a_comparison_question(ctx):
    # each passage also names a place with its own passage; what is left of the question after one person's
    # passage is the other person, not that place
    state = create("graph_bridge", {"top_k": 4})(QueryState("Who is older, Alice Smith or Bob Jones?"), ctx)
    assert set(ids(state)[:2]) == {"alice#0", "bob#0"}


def test_bridge_first_hops_respect_filters():
    state = create("graph_bridge", {"top_k": 3, "hop_top_k": 2})(
        QueryState(BRIDGE_QUESTION.query, filters={"lang": "de"}), _in_link_context())
    assert set(state.notes["graph_bridge"]["first_hop"]) == {"fan1#0", "fan3#0"}
    assert ids(state) and all(i in {"fan1#0", "fan3#0"} for i in ids(state))
    nothing = QueryState(BRIDGE_QUESTION.query, filters={"lang": "fr"})
    assert create("graph_bridge", {"top_k": 3})(nothing, _in_link_context()).hits == ()


def test_bridge_params_are_checked():
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="hop_top_k"):
        create("graph_bridge", {"hop_top_k": 0})
    with pytest.raises(ConfigError, match="bridge_weight"):
        create("graph_bridge", {"bridge_weight": 1.5})
    with pytest.raises(ConfigError, match="dampng"):
        create("graph_bridge", {"dampng": 0.5})

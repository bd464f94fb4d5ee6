"""Offline entity extraction and name normalisation."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from graph.extraction import OfflineEntityExtractor, capitalised_spans, noun_phrases, split_sentences
from graph.normalize import normalize_entity


def test_capitalised_spans_keep_lowercase_connectors_inside_names():
    spans = capitalised_spans("He studied at the University of California and met Ludwig van Beethoven.")
    assert "University of California" in spans and "Ludwig van Beethoven" in spans


def test_sentence_initial_function_words_are_not_part_of_names():
    extractor = OfflineEntityExtractor()
    assert extractor.extract_query("Are Christopher Nolan and Sathish Kalathil both film directors?")[:2] == [
        "christopher nolan", "sathish kalathil"]
    assert "however" not in extractor.extract("However, it rained.").mentions


def test_sentences_do_not_split_after_initials_or_abbreviations():
    assert split_sentences("The U.S. Army was founded by Mr. Smith in 1775. It grew.") == [
        "The U.S. Army was founded by Mr. Smith in 1775.", "It grew."]


def test_quoted_titles_and_noun_phrases_are_candidates():
    found = OfflineEntityExtractor().extract('The band recorded "Come Together" for a collectible dice game.')
    assert "come together" in found.mentions and "collectible dice game" in found.mentions
    assert noun_phrases("a ball of the game", 3) == []  # single content words are not phrases


def test_acronym_in_parentheses_merges_into_its_long_form():
    found = OfflineEntityExtractor().extract(
        "The Federal Bureau of Investigation (FBI) is an agency. The FBI was founded in 1908.")
    assert found.mentions["federal bureau of investigation"] == 3
    assert "FBI" in found.surfaces["federal bureau of investigation"]


def test_title_is_a_mention_and_co_occurs_with_every_sentence():
    found = OfflineEntityExtractor().extract("He met Anna Berg. Later he visited Oslo.", title="Per Olsen")
    assert found.mentions["per olsen"] == 1
    assert all("per olsen" in sentence for sentence in found.sentences)


def test_phrases_can_be_switched_off():
    found = OfflineEntityExtractor(phrases=False).extract("A collectible dice game by Tim Brown.")
    assert set(found.mentions) == {"tim brown"}


def test_yake_keyphrases_are_added_when_asked():
    text = "Graph retrieval uses personalized pagerank over entity graphs. Entity graphs link passages."
    found = OfflineEntityExtractor(phrases=False, yake_top=3).extract(text)
    assert len(found.mentions) >= 2


def test_surface_variants_normalise_to_one_key():
    assert {normalize_entity(s) for s in ["The Beatles", "the  beatles", "BEATLES'", "Beatles’s"]} == {"beatles"}
    assert normalize_entity("Beyoncé") == normalize_entity("Beyonce")
    assert normalize_entity("The") == "" and normalize_entity("42") == "" and normalize_entity("1998") == "1998"


@given(st.text(max_size=40))
def test_normalisation_is_idempotent(text):
    key = normalize_entity(text)
    assert normalize_entity(key) == key or normalize_entity(key) == ""

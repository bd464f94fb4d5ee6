"""Optional LLM extraction of (subject, relation, object) triples, in the style of HippoRAG's OpenIE step
(Gutiérrez et al. 2024) and LightRAG's entity/relation extraction (Guo et al. 2024).

The generator is anything with ``complete(prompt, max_tokens, stop) -> str`` (``resources.generator(spec)``).
The output fills the same :class:`~graph.extraction.ChunkEntities` as the offline extractor: every subject and
object is a mention, every triple is a "sentence" joining its two entities (so co-occurrence PMI applies
unchanged) and carries its relation label — both paths give the same graph schema.
"""
from __future__ import annotations

import json
import re
from typing import Any

from graph.extraction import ChunkEntities
from graph.normalize import normalize_entity

PROMPT = """Extract the facts in the passage as (subject, relation, object) triples. Subjects and objects are \
named entities or short noun phrases copied from the passage; relations are short verb phrases.
Answer with a JSON list of 3-element lists and nothing else.

Title: {title}
Passage: {text}

Triples:"""

_JSON_LIST = re.compile(r"\[.*\]", re.DOTALL)
_TRIPLE_LINE = re.compile(r"\(?\s*[\"']?([^,\"'()]+)[\"']?\s*,\s*[\"']?([^,\"'()]+)[\"']?\s*,\s*[\"']?([^\"'()]+?)[\"']?\s*\)?\s*$")


def parse_triples(output: str) -> list[tuple[str, str, str]]:
    """Triples from a model's answer: a JSON list of lists, or one ``(s, r, o)`` per line as a fallback."""
    match = _JSON_LIST.search(output)
    if match:
        try:
            data = json.loads(match.group(0))
            return [tuple(str(x).strip() for x in item) for item in data
                    if isinstance(item, (list, tuple)) and len(item) == 3]
        except json.JSONDecodeError:
            pass
    triples = []
    for line in output.splitlines():
        found = _TRIPLE_LINE.match(line.strip().lstrip("-*0123456789. "))
        if found:
            triples.append(tuple(part.strip() for part in found.groups()))
    return triples


class LLMTripleExtractor:
    """Extracts entities and relations with a generator; ``generator`` must implement ``complete``."""

    def __init__(self, generator: Any, max_tokens: int = 512):
        if not hasattr(generator, "complete"):
            from rag.errors import ConfigError

            raise ConfigError(f"extractor 'llm' needs a generator with complete(); got {type(generator).__name__}",
                              "generator")
        self.generator = generator
        self.max_tokens = max_tokens

    def extract(self, text: str, title: str | None = None) -> ChunkEntities:
        output = self.generator.complete(PROMPT.format(title=title or "", text=text), max_tokens=self.max_tokens)
        result = ChunkEntities()
        sentences = []
        folded = text.casefold()
        if title:
            result.add_mention(title)
        for subject, relation, obj in parse_triples(output):
            keys = []
            for surface in (subject, obj):
                key = normalize_entity(surface)
                if key:
                    result.add_mention(surface, key)
                    keys.append(key)
            if len(keys) == 2 and keys[0] != keys[1]:
                sentences.append(frozenset(keys))
                result.triples.append((keys[0], relation.strip().casefold(), keys[1]))
        # mention counts are occurrences in the passage (at least one), not the number of triples
        for key in list(result.mentions):
            surfaces = result.surfaces[key]
            in_text = sum(folded.count(s.casefold()) for s in surfaces)
            result.mentions[key] = max(1, in_text)
        result.sentences = sentences
        return result

    def extract_query(self, text: str) -> list[str]:
        return list(self.extract(text).mentions)

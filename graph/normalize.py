"""Entity name normalisation: the key under which surface forms of one entity merge.

``"The Beatles'"``, ``"the  beatles"`` and ``"THE BEATLES"`` all become ``"beatles"``: Unicode NFKC, accents
stripped, casefolded, punctuation at the edges and possessives removed, a leading article dropped, inner
whitespace and dashes collapsed. Keys are what graph nodes are named by; the most frequent surface form is
kept as the display name.
"""
from __future__ import annotations

import re
import unicodedata

_LEADING_ARTICLE = re.compile(r"^(?:the|a|an)\s+")
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_INNER_SPACE = re.compile(r"[\s\-‐‑‒–—_/]+")
_INNER_DROP = re.compile(r"[\"“”‘’'`.,;:!?()\[\]{}]")

#: Words that are capitalised at the start of sentences but are never entities on their own.
STOPWORDS = frozenset("""
a about above after again against all also although am an and any are as at be because been before being
below between both but by can could did do does doing down during each either few for from further had has
have having he her here hers herself him himself his how however i if in into is it its itself just late
later many may me might more most much must my myself neither no nor not now of off on once only or other
our ours ourselves out over own same several she should since so some such than that the their theirs them
themselves then there these they this those though through thus to too under until up upon very was we
were what when where whether which while who whom whose why will with within without would yet you your
yours yourself yourselves one two three four five six seven eight nine ten first second third new old
its it's many much born died known called named based located released became become following during
january february march april may june july august september october november december
monday tuesday wednesday thursday friday saturday sunday mr mrs ms dr st
like unlike means mean meaning include includes including used using make makes made take takes
also became becomes well often usually including along toward towards among amongst via per
""".split())


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_entity(surface: str) -> str:
    """The merge key of an entity surface form; ``""`` when nothing meaningful is left."""
    text = strip_accents(unicodedata.normalize("NFKC", surface)).casefold()
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C").strip()  # control chars
    previous = None
    while text != previous:  # each pass can expose new edge punctuation or an article ("A ¡B" → "¡b" → "b")
        previous = text
        text = _EDGE_PUNCT.sub("", text)
        text = _POSSESSIVE.sub("", text)
        text = _INNER_DROP.sub("", text)
        text = _INNER_SPACE.sub(" ", text).strip()
        text = _LEADING_ARTICLE.sub("", text)
    if not text or text in STOPWORDS or not any(ch.isalnum() for ch in text):
        return ""
    if text.isdigit() and len(text) != 4:  # keep years, drop other bare numbers
        return ""
    return text

"""Code chunking on the syntax tree (cAST, Zhang et al. 2025, "cAST: Enhancing Code Retrieval-Augmented
Generation with Structural Chunking via Abstract Syntax Tree").

YAML::

    index:
      chunker: {op: ast, max_chars: 1200, chunk_size: 512}   # language from metadata["language"] or a suffix
      # or one language for every document:
      # chunker: {op: ast, language: typescript, max_chars: 800}

The file is parsed with tree-sitter (the per-language grammar wheels: python, javascript, typescript, tsx, java, go,
rust, c, cpp; compiled grammars, nothing downloaded). Size is measured in non-whitespace characters (cAST's measure,
``max_chars``) and, as a hard ceiling, in tokens (``chunk_size``). A node that fits is one unit; a node over the
budget is split recursively into its children; adjacent sibling units are merged greedily while the merged span fits.
Beyond cAST, siblings that define nothing (a closing quote or brace, statements) join the last piece of a split node
before them while it fits, instead of starting a new chunk, so splitting leaves no fragments like a lone closing
triple quote; a definition still starts its own chunk. A split definition's header (keywords, name, parameters,
decorators) and the comments or Rust attributes just before it open its first chunk, packed with its first statements
(a body that fits alone is split too, at its statements, rather than leave the header a chunk of its own; a body of
one compound statement, a ``try:`` block too big to follow the header, still leaves it alone; Go's ``statement_list``
is read as its block's statements); comments that do not fit with the header and what follows it are a chunk of their
own (in the scope around the definition), so the header is never cut to fill theirs; comments that would end
a chunk open the next one, with the code they describe, when that fits (a comment ending a line of code is part of
that line; when a header and its ``{`` before them cannot come too, they come alone if what stays is not smaller).
Decorators and comments alone do not split a definition that fits a chunk: it stays whole and they are a chunk
before it (a decorator is never cut to fill the chunk before it). Rust attributes (``#[derive(Debug)]``,
``#[test]``) do: alone they say nothing, so they open the item's first chunk as its header does, unless its split
leaves a chunk smaller than they are (a lone ``}``); comments before them that do not fit go alone. An opening
brace goes with the code after it, so a ``namespace a {`` or ``class A {`` opens the first chunk of the definition it
holds, and a statement's header (``if (x)``, ``for ...``, ``switch x``, ``else``) goes with the ``{`` it opens when
they fit a chunk and what stays behind is not smaller than the header (nor comments alone). A control keyword
(``else``, ``if``, ``for``, ``while``, ``#if``) that would end a chunk opens the next, with the keywords and comments
just before it (or only its last lines of keywords: ``if`` after ``#else``), when they fit there and what stays is not
smaller (nor comments alone) (:mod:`chunkers._keywords`). A leaf over the budget (a huge string literal) is split at
lines, then whitespace, then characters.

Unlike the reference cAST code (which drops oversized leaves and rebuilds text approximately) this is lossless: every
node's span is extended to the start of its next sibling, so the chunks tile the file exactly (``"".join(c.text for c
in chunks) == text``). Tree-sitter's byte offsets are converted to character offsets exactly. Chunk metadata:
``language``, ``scope_path`` (names of the definitions enclosing the code the chunk starts with, outermost first: a
chunk that runs on past the end of a definition, into its closing brace and the statements after it, keeps the scope
it starts in; the first chunk of a split definition, which opens with its header and the comments before it, is in
that definition's scope) and ``definitions``: the names of all definitions whose node starts in the chunk, nested ones
included (a class and its methods), in document order, so every named definition of the file is listed by exactly one
chunk. A definition (:mod:`chunkers._syntax`) is a named node of :data:`~chunkers._syntax.SCOPE_TYPES`, wherever it
sits (inside a Go ``type`` declaration, a Rust ``mod``, a C++ namespace), or a JavaScript / TypeScript name bound
to a function (``const handler = (req, res) => ...``, a class field, an object literal's property,
``exports.run = function () ...``); a C/C++ struct, class, union or enum specifier, and a Java or Go method or
function, only with a body (``struct point *p`` names a type, it does not define one). ``declarations``: likewise
the names of the functions and methods declared without a body whose declaration starts in the chunk (C / C++
prototypes and member function and conversion operator declarations, TypeScript interface and abstract methods and
overload signatures, Go interface methods, Rust trait and ``extern`` functions, Java's abstract and interface
methods); a function pointer variable, a parameter or a typedef declares none. Names have their whitespace
collapsed.

A C file with parse errors is parsed as C++ too, and the parse with fewer bytes in errors is kept (headers named
``.h`` are often C++). Unknown languages, missing grammars, input that does not parse (errors over half the
file; in C and C++ the complete definitions inside an error count as parsed: an ``#ifdef`` splitting one function
header can make an error of a whole header) and a parse that takes too long (some grammars never finish on some inputs:
:func:`chunkers._parse.parse_in_time`) fall back to the recursive text chunker with the same ``chunk_size``, its
chunks over ``max_chars`` split again down the same separators (:mod:`chunkers._code_fallback`); those chunks carry
``metadata["fallback"]`` (and an empty ``scope_path``, ``definitions`` and ``declarations``). Lone CRs are parsed as
line feeds, NULs as spaces (:func:`chunkers._parse.source_to_parse`).
A document's ``metadata["language"]`` that is not a string is an :class:`~rag.errors.InputError` naming the
document.
"""
from __future__ import annotations

import bisect

from pydantic import Field, model_validator

from chunkers._code_fallback import nonspace_prefix, split_at_lines, text_chunks
from chunkers._keywords import open_with_keywords
from chunkers._spans import Span, build_chunks, fit_spans
from chunkers._splitter import RecursiveSplitter
from chunkers._parse import parse_in_time, source_to_parse
from chunkers._syntax import (COMMENT_TYPES, FUNCTION_VALUES, GRAMMARS, RETRY_LANGUAGE, attaches, error_fraction,
                              find_declarations, find_definitions, get_grammar, is_scope, leads, normalise_language,
                              pieces, scope_name, starts_definition, trails)
from chunkers._token_index import utf8_char_index
from chunkers.base import Chunker, TokenizerName, tokenizer_field
from rag.documents import language_of_path
from rag.errors import ConfigError, InputError
from rag.registry import OperatorParams, operator
from rag.types import Chunk, Document

#: Parsed input whose ERROR nodes cover more than this fraction of the bytes is treated as unparsable.
MAX_ERROR_FRACTION = 0.5



class SyntaxSplitter:
    """cAST's split-then-merge over one parsed file, on character spans that tile the text."""

    def __init__(self, text: str, source: bytes, tokenizer, max_chars: int, max_tokens: int):
        self.text = text
        self.source = source
        self.char_of_byte = None if text.isascii() else utf8_char_index(text)
        self.nonspace = nonspace_prefix(text)
        self.tokens = RecursiveSplitter(text, tokenizer, markdown=False)
        self.max_chars = max_chars
        self.max_tokens = max_tokens

    def char(self, byte_offset: int) -> int:
        return byte_offset if self.char_of_byte is None else int(self.char_of_byte[byte_offset])

    def fits(self, start: int, end: int) -> bool:
        return (self.nonspace[end] - self.nonspace[start] <= self.max_chars
                and self.tokens.estimate(start, end) <= self.max_tokens)

    def split_node(self, node, start: int, end: int, scope: tuple[str, ...],
                   described: int | None = None) -> list[tuple[Span, tuple]]:
        """Chunks ``(span, scope_path)`` tiling ``[start, end)``, which contains ``node``; ``[start, described)``, when
        given, holds only the comments before ``node`` that describe it (then its Rust attributes, up to ``node``)."""
        name = scope_name(node, self.source) if is_scope(node) else None
        inner_scope = scope + (name,) if name else scope
        children = pieces(node)
        # a comment ending a line of code is part of that code's piece
        children[1:] = [c for previous, c in zip(children, children[1:]) if not trails(c, previous, self.source)]
        by_start = {self.char(c.start_byte): c for c in children}
        cuts = sorted(c for c in by_start if start < c < end)
        if not cuts:
            if len(children) == 1 and not self.fits(start, end):
                # a wrapper (module with one class, a decorated definition) too big for one chunk: descend. (One
                # that fits is a chunk in this scope: a file holding one function is not inside it.)
                return self.split_node(children[0], start, end, inner_scope, described)
            return [(span, inner_scope) for span in self.split_text(start, end)]
        if children and self.char(children[0].start_byte) <= start:
            by_start[start] = children[0]
        opens = cuts[0]  # where the text passed before this node (the header it is the body of, comments) ends
        if described is not None and start < described < opens:
            cuts.insert(0, described)  # its comments and its attributes are a piece each
        edges = [start, *cuts, end]
        out: list[tuple[Span, tuple]] = []
        group: list[Span] = []
        group_children: list = []  # the child starting each piece of the group (None for a gap)

        def flush(chunk_scope: tuple[str, ...] = inner_scope):
            if group:
                out.append(((group[0][0], group[-1][1]), chunk_scope))
                group.clear()
                group_children.clear()

        def trailing(goes) -> int:
            """How many of the group's last pieces, in a row, ``goes(child)`` accepts (the child starting each
            piece; None for the text before this node's first child: the header of the definition it is the body
            of)."""
            n = 0
            for child in reversed(group_children):
                if not goes(child):
                    break
                n += 1
            return n

        def detach(n: int) -> tuple[list[Span], list]:
            """The group's last ``n`` pieces and their children, taken off the group."""
            cut = len(group) - n
            taken = (group[cut:], group_children[cut:])
            del group[cut:], group_children[cut:]
            return taken

        def flush_all_but(n: int, chunk_scope: tuple[str, ...] = inner_scope) -> None:
            """The group a chunk but for its last ``n`` pieces, which open the next group."""
            carried, carried_children = detach(n)
            flush(chunk_scope)
            group.extend(carried)
            group_children.extend(carried_children)

        def describes(child) -> bool:  # a comment, decorator or attribute: it goes with the code after it
            return child is not None and leads(child)

        def goes_with_next(child) -> bool:  # a comment, decorator or attribute, this node's header text or "{"
            return child is None or leads(child) or child.type == "{"

        def defines_nothing(child) -> bool:  # keywords, a name, parameters, a statement, a comment
            return child is None or leads(child) or not starts_definition(child, self.source)

        # a definition (or one wrapped), or a function bound to a name: its header comes first
        header = starts_definition(node, self.source) or node.type in FUNCTION_VALUES
        tail_open = False  # out[-1] is the last piece of a child that was split, and may take what follows
        for a, b in zip(edges[:-1], edges[1:]):
            child = by_start.get(a)  # the child starting this piece; None for a gap before the first child
            if (described is not None and header and child is not None and group and group[0][0] == start
                    and group[-1][1] > described and not self.fits(start, b)):
                # the comments describing this definition fit neither with its header nor before it in one chunk:
                # they are a chunk of their own and the header opens the next, whole (QA: a header was cut in
                # its parameters, left alone before its body), with its attributes; they join the comments only
                # when they do not fit with the header (a body is split to follow them). No code of the definition
                # in their chunk: the scope around it
                keep_from = (described if self.fits(described, b) else opens if described < opens and self.fits(
                    opens, b) and child != node.child_by_field_name("body") else None)
                if keep_from is not None:
                    flush_all_but(sum(1 for piece in group if piece[0] >= keep_from), scope)
            # a definition's header that cannot take its whole body along opens the body's first chunk: the body is
            # split after it, rather than leaving the header a chunk of its own. Not when the group holds only
            # decorators, comments or attributes (and the text before this node's first child): a decorator is
            # not cut to fill their chunk, and a definition that fits alone stays whole, with those a chunk before
            # it, as comments are when they do not fit with the code they describe
            header_alone = (header and child is not None and group and not self.fits(group[0][0], b)
                            and trailing(defines_nothing) == len(group)
                            and any(piece is not None and not leads(piece) for piece in group_children))
            # Rust attributes before a child that fits alone but not with them: it is split, so that they open its
            # first chunk, as its header does (rather than be a chunk of their own), unless that leaves a smaller one
            attributes = trailing(attaches) if child is not None and not leads(child) else 0
            attached = (attributes and self.fits(a, b) and not self.fits(group[len(group) - attributes][0], b)
                        and self.splits_after(child, group[len(group) - attributes][0], a, b, inner_scope))
            if self.fits(a, b) and not header_alone and not attached:
                if (tail_open and defines_nothing(child) and not describes(child)
                        and self.fits(out[-1][0][0], b)):
                    # a piece that defines nothing (a closing quote or brace, a statement) joins the tail of the
                    # split child before it instead of standing alone; the chunk keeps the scope it starts in
                    out[-1] = ((out[-1][0][0], b), out[-1][1])
                    continue
                tail_open = False
                if group and not self.fits(group[0][0], b):
                    # comments at the group's end open the next chunk with the code they describe, if it fits; and
                    # so does the header of a statement (``if (x)``, ``switch x``) with the "{" it opens
                    moved = trailing(goes_with_next)
                    if (node.type.endswith(("_statement", "_clause")) and children[0].type != "{"
                            and self.text.startswith("{", group[len(group) - moved][0] if moved else a)):
                        moved = max(moved, self.header_before_brace(group, group_children, a, b, described))
                    if moved and (moved == len(group) or not self.fits(group[len(group) - moved][0], b)):
                        # not all: the comments (attributes) alone, before no comment, leaving no smaller chunk
                        own = 0 if child is not None and child.type in COMMENT_TYPES else trailing(describes)
                        cut, nonspace = group[len(group) - own][0] if own else a, self.nonspace
                        moved = (own if 0 < own < len(group) and self.fits(cut, b)
                                 and nonspace[cut] - nonspace[group[0][0]] >= nonspace[a] - nonspace[cut] else 0)
                    flush_all_but(moved)
                group.append((a, b))
                group_children.append(child)
                continue
            # a child too big for one chunk is split, and the group's last pieces that go with it open its first
            # chunk: its split starts where they do, so its first pieces are packed after them. They are, in a
            # definition, its header; the text before this node's first child (the header of the definition it is
            # the body of); comments and attributes; before a child that defines nothing, whatever defines
            # nothing too. (Before a split definition nothing else: a definition starts its chunk.)
            child_defines = child is not None and starts_definition(child, self.source)
            passed = trailing(goes_with_next if attached else lambda piece: goes_with_next(piece)
                              or (header or not child_defines) and defines_nothing(piece))
            own = trailing(describes)  # the comments and attributes describing the child, in its scope
            code_start = group[len(group) - attributes][0] if attributes else a  # where its attributes start
            if passed and not self.fits(group[len(group) - passed][0], a):
                # pieces that fill a chunk of their own stay in this scope; not the child's attributes (nor the
                # comments before them, if they fit with them)
                passed = own = (0 if not attributes or not self.fits(code_start, a) else
                                own if self.fits(group[len(group) - own][0], a) else attributes)
            lead = detach(passed)[0][0][0] if passed else a
            sub = None
            if child is not None:
                try:
                    sub = self.split_node(child, lead, b, inner_scope, code_start if passed and passed == own else None)
                except RecursionError:  # nested past Python's stack (thousands of levels): this child as text
                    pass
            if sub is None:
                sub = [(span, inner_scope) for span in self.split_text(lead, b)]
            elif child_defines and not (header and name is None) and passed > own and sub:
                # its first chunk opens with more than the comments describing it (the header of the definition this
                # node is the body of, a ``typedef``): it is in this scope, as the chunks enclosing its start. (A
                # wrapper's pieces, decorators or ``export``, are the wrapped definition's own.)
                sub[0] = (sub[0][0], inner_scope)
            flush()
            out.extend(sub)
            tail_open = bool(sub)
        flush()
        return out

    def header_before_brace(self, group: list[Span], children: list, a: int, b: int, described: int | None) -> int:
        """How many pieces at the end of ``group`` (``children`` start them; None for the text passed before the
        statement) are the statement's own, its header (``if (x)``, ``switch x {``), to open the next chunk with
        the "{" it opens, up to ``b``: all of them, if they fit there and what stays is neither smaller than they
        are nor only the comments passed before the statement (``described``); else 0."""
        own = next((i for i, child in enumerate(reversed(children)) if child is None), len(group))
        cut = group[len(group) - own][0] if own else a
        if (0 < own < len(group) and self.fits(cut, b)
                and (described is None or any(child is not None for child in children[:len(group) - own]))
                and self.nonspace[cut] - self.nonspace[group[0][0]] >= self.nonspace[a] - self.nonspace[cut]):
            return own
        return 0

    def splits_after(self, node, lead: int, start: int, end: int, scope: tuple[str, ...]) -> bool:
        """Whether ``node`` (``[start, end)``), split after its attributes ``[lead, start)``, leaves no chunk with
        fewer non-whitespace characters than they hold (a lone ``}``) after its first."""
        try:
            sub = self.split_node(node, lead, end, scope, lead)
        except RecursionError:  # nested past Python's stack: the node stays whole
            return False
        least = self.nonspace[start] - self.nonspace[lead]
        return all(self.nonspace[b] - self.nonspace[a] >= least for (a, b), _ in sub[1:])

    def split_text(self, start: int, end: int) -> list[Span]:
        """Spans of an unsplittable node's text: at lines, then whitespace, then characters, packed greedily."""
        return split_at_lines(self.text, start, end, self.fits)


@operator("ast", kind="chunker")
class ASTChunker(Chunker):
    """cAST code chunking on tree-sitter syntax trees; lossless, scope path in metadata, recursive fallback."""

    class Params(OperatorParams):
        language: str | None = Field(None, description="python, javascript, typescript, tsx, java, go, rust, c, "
                                                       "cpp; default: the document's metadata['language']")
        max_chars: int = Field(1200, gt=0, description="non-whitespace characters per chunk (cAST's budget)")
        chunk_size: int = Field(512, gt=0, description="maximum tokens per chunk (hard ceiling)")
        tokenizer: TokenizerName = tokenizer_field()

        @model_validator(mode="after")
        def _known_language(self):
            # checked with the params, so `ragloom validate` and the config's line name it
            language = normalise_language(self.language)
            if language is not None and language not in GRAMMARS:
                raise ConfigError(f"unknown language {self.language!r}; valid: {', '.join(GRAMMARS)}", "language")
            return self

    def __init__(self, **params):
        super().__init__(**params)
        self.language_ = normalise_language(self.params.language)

    def language_of(self, document: Document) -> str | None:
        """The ``language`` parameter, else the document's ``metadata["language"]``, else the language of the
        file suffix of its ``metadata["path"]`` or of its id (``pkg/mod.py``), as :func:`rag.documents.read_documents`
        sets it."""
        if self.language_:
            return self.language_
        language = document.metadata.get("language")
        if language is not None and not isinstance(language, str):
            raise InputError(f"document {document.id!r}: metadata 'language' must be a language name such as "
                             f"'python', got {type(language).__name__} {language!r}")
        if language is None:
            path = document.metadata.get("path")
            language = language_of_path(path if isinstance(path, str) else "") or language_of_path(document.id)
        return normalise_language(language)

    def chunk(self, document: Document) -> list[Chunk]:
        text = document.text
        if not text:
            return []
        language = self.language_of(document)
        if not language or get_grammar(language) is None:
            return self._fallback(document, language, "no grammar" if language else "no language")
        source = source_to_parse(text, language)
        tree = parse_in_time(language, source)
        if tree is None:
            return self._fallback(document, language, "parse timed out")
        root = tree.root_node
        errors = error_fraction(root, language) if root.has_error else 0.0
        retry = RETRY_LANGUAGE.get(language) if root.has_error else None
        if retry is not None and get_grammar(retry) is not None:
            retried = parse_in_time(retry, source)
            retried_errors = error_fraction(retried.root_node, retry) if retried is not None else errors
            if retried_errors < errors:
                language, root, errors = retry, retried.root_node, retried_errors  # a C++ header
        if errors > MAX_ERROR_FRACTION:
            return self._fallback(document, language, "parse errors")
        splitter = SyntaxSplitter(text, source, self.tokenizer_, self.params.max_chars, self.params.chunk_size)
        try:
            pieces = splitter.split_node(root, 0, len(text), ())
        except RecursionError:  # pathological nesting (thousands of levels): chunk as text instead
            return self._fallback(document, language, "nesting too deep")
        pieces = open_with_keywords(pieces, root, text, splitter.char_of_byte, splitter.fits, splitter.nonspace)
        spans = [span for span, _ in pieces]
        counts = splitter.tokens.index.counts(spans)
        scope_of = dict(pieces)
        # a piece cut by the token ceiling stays inside its piece: joined to the next one it could pass max_chars
        spans, counts, oversize = fit_spans(text, spans, self.tokenizer_, self.params.chunk_size, counts,
                                            join_next=False)
        definitions = [(splitter.char(start), name) for start, name in find_definitions(root, language, source)]
        declarations = [(splitter.char(start), name) for start, name in find_declarations(root, language, source)]
        metadata = []
        for span, defined, declared in zip(spans, names_starting_in(spans, definitions),
                                           names_starting_in(spans, declarations)):
            scope = scope_of[span] if span in scope_of else _scope_of_recut(span, pieces)
            metadata.append({"language": language, "scope_path": list(scope), "definitions": defined,
                             "declarations": declared})
        return build_chunks(document, spans, counts, oversize, metadata, tokenizer=self.tokenizer_)

    def _fallback(self, document: Document, language: str | None, reason: str) -> list[Chunk]:
        return text_chunks(document, language, reason, self.params.chunk_size, self.params.max_chars,
                           self.params.tokenizer, self.tokenizer_)


def names_starting_in(spans: list[Span], definitions: list[tuple[int, str]]) -> list[list[str]]:
    """For each of the ordered, tiling ``spans``, the names of the ``(start, name)`` definitions (in document
    order) that start inside it."""
    starts = [start for start, _ in definitions]
    out = []
    for start, end in spans:
        first, last = bisect.bisect_left(starts, start), bisect.bisect_left(starts, end)
        out.append([name for _, name in definitions[first:last]])
    return out


def _scope_of_recut(span: Span, pieces: list) -> tuple:
    """Scope path of a span the token ceiling re-cut (:func:`chunkers._spans.fit_spans`): that of the piece it
    overlaps most."""
    starts = [piece[0] for piece, _ in pieces]
    first = max(bisect.bisect_right(starts, span[0]) - 1, 0)
    last = bisect.bisect_left(starts, span[1])
    best = max(range(first, last), key=lambda i: min(span[1], pieces[i][0][1]) - max(span[0], pieces[i][0][0]))
    return pieces[best][1]

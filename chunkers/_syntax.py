"""Tree-sitter grammars and definitions for the ``ast`` chunker (:mod:`chunkers.ast`): which grammar wheel parses
a language (names, aliases, the C → C++ retry), how much of a parse is errors, which nodes define a named scope
across the grammars, and the name each definition declares.

Everything here reads tree-sitter nodes and the source bytes only; parsing is :mod:`chunkers._parse`'s job,
chunk boundaries and sizes :class:`chunkers.ast.SyntaxSplitter`'s.
"""
from __future__ import annotations

import importlib
import re
from functools import lru_cache

#: language -> (grammar module, function returning the language pointer)
GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "java": ("tree_sitter_java", "language"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
}
ALIASES = {"py": "python", "js": "javascript", "jsx": "javascript", "mjs": "javascript", "cjs": "javascript",
           "ts": "typescript", "mts": "typescript", "cts": "typescript", "c++": "cpp", "cxx": "cpp", "cc": "cpp",
           "hpp": "cpp", "hh": "cpp", "hxx": "cpp", "h": "c", "golang": "go", "rs": "rust"}
#: A file with parse errors in the first language is parsed in the second too, and the parse with fewer bytes
#: in errors is kept (C++ headers named ``.h``).
RETRY_LANGUAGE = {"c": "cpp"}

#: Node types that open a named scope (functions, classes, methods, types, modules) across the grammars.
SCOPE_TYPES = frozenset({
    "function_definition", "class_definition",                                         # python, c, cpp
    "function_declaration", "generator_function_declaration", "class_declaration",     # js, ts, java, go
    "abstract_class_declaration", "method_definition", "interface_declaration", "enum_declaration",
    "internal_module", "module", "type_alias_declaration",
    "method_declaration", "constructor_declaration", "record_declaration", "annotation_type_declaration",
    "type_spec", "type_alias",                                                          # go
    "function_item", "impl_item", "struct_item", "enum_item", "trait_item", "mod_item", "union_item",  # rust
    "type_item", "const_item", "static_item", "macro_definition",
    "struct_specifier", "class_specifier", "union_specifier", "enum_specifier", "namespace_definition",  # c/cpp
    "type_definition",
})
#: JavaScript / TypeScript functions bound to a name (``const handler = (req, res) => {...}``): a binding
#: (:data:`_BINDINGS`) whose value is one of these is a definition too (:func:`is_scope`).
FUNCTION_VALUES = ("arrow_function", "function_expression", "function", "generator_function")
#: JavaScript / TypeScript nodes binding a name to a value: ``(name field, value field)``. A variable
#: (``const f = ...``), a class field (``onClick = (e) => ...``), an object literal's property (``{handler: ...}``)
#: and an assignment (``exports.run = function () ...``).
_BINDINGS = {"variable_declarator": ("name", "value"), "field_definition": ("property", "value"),
             "public_field_definition": ("name", "value"), "pair": ("key", "value"),
             "assignment_expression": ("left", "right")}
_NAME_TYPES = frozenset({"identifier", "field_identifier", "type_identifier", "property_identifier",
                         "qualified_identifier", "scoped_identifier", "destructor_name", "operator_name",
                         "operator_cast", "namespace_identifier", "private_property_identifier"})
#: Nodes around a definition: decorators, ``export``, a C++ template, and the JavaScript / TypeScript declaration
#: (``const`` / ``let`` / ``var``) of a variable bound to a function.
_WRAPPER_TYPES = frozenset({"decorated_definition", "export_statement", "template_declaration",
                            "lexical_declaration", "variable_declaration"})
#: Nodes that only group their parent's children: Go wraps a block's (and a case's) statements in a
#: ``statement_list``. The splitter reads its children as the parent's own, so a Go body is split at its statements
#: as the other languages' are (:func:`pieces`).
_GROUPING_TYPES = frozenset({"statement_list"})
#: Comments, decorators and Rust's attributes (``#[derive(...)]``): they describe what follows them.
COMMENT_TYPES = frozenset({"comment", "line_comment", "block_comment"})
_LEADING_TYPES = COMMENT_TYPES | {"attribute_item", "decorator"}
#: Rust's outer attributes: part of the item after them, as its header is (:func:`attaches`).
_ATTRIBUTE_TYPES = frozenset({"attribute_item"})
#: Scope types that also occur as a mere reference to a type (``struct point *p``): a definition needs a body.
_DEFINED_WITH_BODY = frozenset({"struct_specifier", "class_specifier", "union_specifier", "enum_specifier"})
#: Functions and methods that may come without a body (Java's abstract and interface methods, a Go function written
#: in assembly): with one they are definitions, without one declarations (:func:`find_declarations`).
_BODY_OPTIONAL = frozenset({"method_declaration", "function_declaration"})
#: Named signatures without a body: TypeScript's interface methods, abstract methods and overloads, Go's interface
#: methods, Rust's trait and ``extern`` functions. (C and C++ prototypes are declarations holding a function
#: declarator: :func:`_prototype_declaration`.)
_SIGNATURE_TYPES = frozenset({"method_signature", "abstract_method_signature", "function_signature", "method_elem",
                              "function_signature_item"})

_WHITESPACE = re.compile(r"\s+")
_AROUND_SCOPE_OPERATOR = re.compile(r" ?:: ?")


def normalise_language(language: str | None) -> str | None:
    """``language`` stripped, lower-cased, without a leading dot and with an alias resolved (``" Py"`` and ``".py"``
    are ``"python"``)."""
    if language is None:
        return None
    key = language.strip().lower().removeprefix(".")
    return ALIASES.get(key, key)


@lru_cache(maxsize=None)
def get_grammar(language: str):
    """The tree-sitter ``Language`` of ``language``, or ``None`` when the language or its grammar wheel is
    missing."""
    if language not in GRAMMARS:
        return None
    module_name, function = GRAMMARS[language]
    try:
        import tree_sitter

        module = importlib.import_module(module_name)
        return tree_sitter.Language(getattr(module, function)())
    except (ImportError, AttributeError, ValueError):
        return None


#: Languages with a preprocessor, whose grammar sees both branches of an ``#ifdef``: one splitting a function
#: header can make an ERROR node of a whole header file holding dozens of well-parsed functions.
_PREPROCESSED = frozenset({"c", "cpp"})


def error_fraction(root, language: str) -> float:
    """Fraction of the parsed bytes inside outermost ERROR nodes; in C and C++ (:data:`_PREPROCESSED`) less the
    complete definitions, preprocessor blocks and comments in them (text that is not code holds few of those).
    Only subtrees flagged with errors are visited."""
    total = max(1, root.end_byte - root.start_byte)
    forgiving = language in _PREPROCESSED
    if root.type == "ERROR" and not forgiving:
        return 1.0
    covered, stack = 0, [(root, root.type == "ERROR")]
    while stack:
        node, in_error = stack.pop()
        for child in node.children:
            if child.type == "ERROR" and not forgiving:
                covered += child.end_byte - child.start_byte
            elif child.type == "ERROR" or child.has_error:
                stack.append((child, in_error or child.type == "ERROR"))
            elif in_error and not (child.type in COMMENT_TYPES or child.type.startswith("preproc_")
                                   or is_scope(child)):
                covered += child.end_byte - child.start_byte
    return covered / total


def pieces(node) -> list:
    """The children a node is split into: its non-empty children, those of a grouping node (:data:`_GROUPING_TYPES`)
    in its place."""
    out = []
    for child in node.children:
        if child.end_byte <= child.start_byte:
            continue
        if child.type in _GROUPING_TYPES:
            out.extend(pieces(child))
        else:
            out.append(child)
    return out


def is_scope(node) -> bool:
    """Whether ``node`` is a definition that opens a named scope: a :data:`SCOPE_TYPES` node, or a JavaScript /
    TypeScript binding of a name to a function (:data:`_BINDINGS`, :data:`FUNCTION_VALUES`)."""
    if node.type in _BINDINGS:
        value = node.child_by_field_name(_BINDINGS[node.type][1])
        return value is not None and value.type in FUNCTION_VALUES
    return node.type in SCOPE_TYPES


def scope_name(node, source: bytes) -> str | None:
    """The declared name of a scope node (following C declarators and Rust impl types), if it has one, with its
    whitespace collapsed (a C++ ``Box<T>::\n    size`` is ``Box<T>::size``)."""
    target = node.child_by_field_name(_BINDINGS[node.type][0] if node.type in _BINDINGS else "name")
    if target is not None and target.type == "string":  # an object literal's quoted key: {'on-click': ...}
        return source[target.start_byte + 1:target.end_byte - 1].decode("utf-8", "replace") or None
    if target is None and node.type == "impl_item":
        target = node.child_by_field_name("type")
    if target is None:  # C / C++ functions: the name sits inside nested (possibly parenthesized) declarators
        declarator = node.child_by_field_name("declarator") or next(
            (c for c in node.children if c.type == "operator_cast"), None)  # in a class: ``operator bool() {...}``
        while declarator is not None and declarator.type not in _NAME_TYPES:
            declarator = declarator.child_by_field_name("declarator") or next(
                (c for c in declarator.named_children if c.type in _NAME_TYPES or c.type.endswith("declarator")),
                None)
        target = declarator
    if target is None:
        return None
    end = target.end_byte
    cast = target if target.type == "operator_cast" else next(
        (c for c in target.children if c.type == "operator_cast"), None)  # ``Foo::operator int``
    if cast is not None:  # a conversion operator is named without its parameters: ``operator int``, ``operator T*``
        end = _parameters_start(cast, end)
    name = source[target.start_byte:end].decode("utf-8", "replace")
    return _AROUND_SCOPE_OPERATOR.sub("::", _WHITESPACE.sub(" ", name).strip())


def _parameters_start(cast, default: int) -> int:
    """Where a conversion operator's parameters start (in its ``abstract_function_declarator``, which a pointer or
    reference declarator may hold: ``operator char *() const``), or ``default``."""
    declarator = cast
    while declarator is not None:
        if declarator.type == "abstract_function_declarator":
            return declarator.start_byte
        declarator = next((c for c in declarator.named_children if c.type.startswith("abstract_")), None)
    return default


def leads(node) -> bool:
    """Whether ``node`` is a comment, a decorator or a Rust attribute: it goes with the code that follows it."""
    return node.type in _LEADING_TYPES


def attaches(node) -> bool:
    """Whether ``node`` is a Rust attribute (``#[derive(Debug)]``, ``#[test]``): it is part of the item after it
    and opens that item's first chunk even when the item alone would fit one (alone, it says nothing)."""
    return node is not None and node.type in _ATTRIBUTE_TYPES


def trails(node, previous, source: bytes) -> bool:
    """Whether ``node`` is a comment on the line where its sibling ``previous`` ends (``x = f(y)  # why``,
    ``} // end namespace``): it goes with that code, not with the code after it."""
    return node.type in COMMENT_TYPES and b"\n" not in source[previous.end_byte:node.start_byte]


def starts_definition(node, source: bytes) -> bool:
    """Whether ``node`` is a named scope or a wrapper holding one (a decorated definition, an ``export``
    statement, a C++ template): the test of the splitter's boundary rule "a definition starts its own chunk". It
    looks no deeper (a Go ``type`` declaration is not a wrapper here) and is left so, as a deeper look would move
    chunk boundaries; the ``definitions`` metadata comes from :func:`find_definitions`."""
    if is_scope(node):
        # a struct, class, union or enum specifier without a body names a type (``struct node *n``): no definition
        return scope_name(node, source) is not None and (
            node.type not in _DEFINED_WITH_BODY or node.child_by_field_name("body") is not None)
    if node.type in _WRAPPER_TYPES:
        return any(starts_definition(child, source) for child in node.named_children)
    return False


@lru_cache(maxsize=None)
def definition_query(language: str):
    """A tree-sitter query capturing the definition nodes of ``language`` as ``@definition``."""
    import tree_sitter

    grammar = get_grammar(language)
    known = [kind for kind in sorted(SCOPE_TYPES) if grammar.id_for_node_kind(kind, True) is not None]
    with_body = _DEFINED_WITH_BODY | _BODY_OPTIONAL
    patterns = [f"({kind} body: (_)) @definition" if kind in with_body else f"({kind}) @definition"
                for kind in known]
    functions = [kind for kind in FUNCTION_VALUES if grammar.id_for_node_kind(kind, True) is not None]
    values = " ".join(f"({kind})" for kind in functions)
    for kind, (_, value) in _BINDINGS.items():
        if functions and grammar.id_for_node_kind(kind, True) is not None:
            patterns.append(f"({kind} {value}: [{values}]) @definition")
    return tree_sitter.Query(grammar, "\n".join(patterns))


@lru_cache(maxsize=None)
def declaration_query(language: str):
    """A tree-sitter query capturing the declarations of ``language`` (signatures without a body) as
    ``@declaration``, and the function declarators that may be C / C++ prototypes as ``@declarator``; None for a
    language without declarations."""
    import tree_sitter

    grammar = get_grammar(language)
    patterns = [f"({kind}) @declaration" for kind in sorted(_SIGNATURE_TYPES)
                if grammar.id_for_node_kind(kind, True) is not None]
    patterns += [f"({kind} !body) @declaration" for kind in sorted(_BODY_OPTIONAL)
                 if grammar.id_for_node_kind(kind, True) is not None]
    if language in _PREPROCESSED:
        patterns.append("(function_declarator) @declarator")
    if language == "cpp":  # a conversion operator declared in a class: ``operator bool() const;``
        patterns.append("(declaration (operator_cast)) @declaration")
    return tree_sitter.Query(grammar, "\n".join(patterns)) if patterns else None  # Python, JavaScript: none


def _captures(query, root) -> dict[str, list]:
    """The nodes under ``root`` that ``query`` captures, by capture name. The query walks the tree in C; Python only
    touches the captured nodes."""
    import tree_sitter

    if query is None:
        return {}
    if hasattr(tree_sitter, "QueryCursor"):  # tree-sitter 0.25 moved running a query to a cursor
        return tree_sitter.QueryCursor(query).captures(root)
    return query.captures(root)


def _named(nodes, source: bytes, start_of=lambda node: node) -> list[tuple[int, str]]:
    """``(start byte, name)`` of the named ``nodes``, in document order (an enclosing node before the ones it
    holds); a node's start is that of ``start_of(node)``."""
    named = sorted(((start_of(node).start_byte, node.start_byte, -node.end_byte, scope_name(node, source))
                    for node in nodes), key=lambda item: item[:3])  # captures come grouped by pattern
    return [(start, name) for start, _, _, name in named if name]


def find_definitions(root, language: str, source: bytes) -> list[tuple[int, str]]:
    """``(start byte, name)`` of every named definition node under ``root``, nested ones included, in document
    order."""
    return _named(_captures(definition_query(language), root).get("definition", []), source)


def find_declarations(root, language: str, source: bytes) -> list[tuple[int, str]]:
    """``(start byte, name)`` of every named declaration under ``root``, in document order: a function or method
    declared without a body (:data:`_SIGNATURE_TYPES`, :data:`_BODY_OPTIONAL` nodes without one, C / C++
    prototypes). A prototype starts where its declaration does (``static int add(int a, int b);``); a declaration of
    several functions (``int f(void), g(void);``) lists each."""
    captures = _captures(declaration_query(language), root)
    declared = list(captures.get("declaration", []))
    starts = {}  # a prototype's function declarator -> its declaration
    for declarator in captures.get("declarator", []):
        declaration = _prototype_declaration(declarator)
        if declaration is not None:
            declared.append(declarator)
            starts[declarator.id] = declaration
    return _named(declared, source, lambda node: starts.get(node.id, node))


def _prototype_declaration(declarator):
    """The declaration (or class member declaration) that the C / C++ ``function_declarator`` declares a function
    in, or None: one inside a function definition's header, a parameter or a type, or declaring a pointer to a
    function (``int (*handler)(int);``, a variable) is no prototype."""
    inner = declarator.child_by_field_name("declarator")
    if inner is None or inner.type == "parenthesized_declarator":
        return None
    node = declarator.parent
    while node is not None and node.type in ("pointer_declarator", "reference_declarator"):
        node = node.parent
    return node if node is not None and node.type in ("declaration", "field_declaration") else None

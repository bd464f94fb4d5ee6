"""Evaluation datasets: the BEIR layout, or a folder of your own documents plus a questions file.

BEIR layout (Thakur et al. 2021), as in ``../shared/datasets/*``::

    corpus.jsonl    {"_id": "d1", "title": "...", "text": "..."}            one document per line
    queries.jsonl   {"_id": "q1", "text": "...", "answers": ["..."],        answers / references optional
                     "references": [{"doc_id": "d1", "start": 10, "end": 42}]}
    qrels/test.tsv  query-id <TAB> corpus-id <TAB> score                     header line optional

Your own data (``load_folder``)::

    my-data/documents/**/*.{txt,md,...}    every file is a document, id = path relative to documents/
    my-data/questions.jsonl                {"question": "...", "answers": [...], "gold_docs": ["a.md"],
                                            "references": [{"doc_id": "a.md", "text": "exact excerpt"}]}

(``questions.yaml`` with a list of the same mappings works too.) Document text is kept byte-for-byte as read
(UTF-8) so gold character spans index into it. Every problem is reported with the file and line.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from evals.metrics import Span
from rag.documents import text_files
from rag.errors import ConfigError, InputError
from rag.jsonl import read_jsonl_objects
from rag.types import Document
from rag.yaml_io import loads_yaml

DATASETS_ENV = "RAGLOOM_DATASETS"
TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".py", ".js", ".ts", ".java", ".go",
                 ".rs", ".c", ".h", ".cpp", ".hpp", ".json", ".csv", ".tex", ".xml", ".yaml", ".yml"}


@dataclass(frozen=True, slots=True)
class Query:
    """One evaluation question: gold documents live in ``Dataset.qrels``; answers and spans here."""

    id: str
    text: str
    answers: tuple[str, ...] = ()
    references: tuple[Span, ...] = ()


@dataclass(slots=True)
class Dataset:
    name: str
    path: Path
    documents: list[Document]
    queries: list[Query]
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def has_answers(self) -> bool:
        return any(q.answers for q in self.queries)

    @property
    def has_references(self) -> bool:
        return any(q.references for q in self.queries)

    def limited(self, limit: int | None) -> "Dataset":
        """The same corpus with only the first ``limit`` queries (the corpus is never cut: scores stay comparable)."""
        if not limit or limit >= len(self.queries):
            return self
        queries = self.queries[:limit]
        keep = {q.id for q in queries}
        return Dataset(self.name, self.path, self.documents, queries,
                       {q: r for q, r in self.qrels.items() if q in keep})


# --------------------------------------------------------------------------------------------- resolving

def dataset_search_dirs(experiment_file: str | Path | None = None) -> list[Path]:
    """Where a dataset given by name is looked up, in order.

    ``$RAGLOOM_DATASETS`` (``os.pathsep``-separated), ``./datasets`` and ``../shared/datasets`` relative to the
    working directory, then ``datasets`` and ``../shared/datasets`` next to the experiment file and each of its
    parent folders.
    """
    dirs = [Path(p) for p in os.environ.get(DATASETS_ENV, "").split(os.pathsep) if p]
    cwd = Path.cwd()
    dirs += [cwd / "datasets", cwd.parent / "shared" / "datasets"]
    if experiment_file is not None:
        for parent in Path(experiment_file).resolve().parents:
            dirs += [parent / "datasets", parent.parent / "shared" / "datasets"]
    return list(dict.fromkeys(dirs))


def resolve_dataset(name_or_path: str | Path, experiment_file: str | Path | None = None) -> Path:
    """The folder of a dataset given as a path (absolute or relative to the experiment file) or by name."""
    raw = Path(name_or_path).expanduser()
    candidates = [raw]
    if experiment_file is not None and not raw.is_absolute():
        candidates.append(Path(experiment_file).resolve().parent / raw)
    for cand in candidates:
        if _is_dataset_dir(cand):
            return cand.resolve()
    if len(raw.parts) == 1:
        for folder in dataset_search_dirs(experiment_file):
            if _is_dataset_dir(folder / raw):
                return (folder / raw).resolve()
    for cand in candidates:
        if cand.is_dir():  # exists but is not a dataset: let read_dataset say what is missing
            return cand.resolve()
    looked = [str(c) for c in candidates] + [str(d / raw) for d in dataset_search_dirs(experiment_file)]
    raise InputError(f"dataset {str(name_or_path)!r} not found; looked in: {', '.join(looked)}. "
                     f"Give a path or set ${DATASETS_ENV}.")


def _is_dataset_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "corpus.jsonl").is_file() or _questions_file(path) is not None)


def read_dataset(name_or_path: str | Path, experiment_file: str | Path | None = None,
                 split: str = "test") -> Dataset:
    """Load a BEIR folder (has ``corpus.jsonl``) or a documents folder with a questions file."""
    path = resolve_dataset(name_or_path, experiment_file)
    if (path / "corpus.jsonl").is_file():
        return load_beir(path, split=split)
    if _questions_file(path) is not None:
        return load_folder(path)
    raise InputError(f"{path}: neither a BEIR dataset (corpus.jsonl) nor a documents folder with "
                     "questions.jsonl / questions.yaml")


# ------------------------------------------------------------------------------------------------- BEIR

def _required_str(row: dict, key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, (str, int)) or (isinstance(value, str) and not value and key != "text"):
        raise InputError(f"{where}: missing or invalid {key!r} (got {value!r})")
    return str(value)


def load_beir(path: str | Path, split: str = "test") -> Dataset:
    """Read a BEIR folder; validates ids, qrels and character spans against the corpus."""
    path = Path(path)
    documents: list[Document] = []
    seen_docs: dict[str, int] = {}
    corpus_file = path / "corpus.jsonl"
    for lineno, row in read_jsonl_objects(corpus_file):
        where = f"{corpus_file}:{lineno}"
        doc_id = _required_str(row, "_id", where)
        text = row.get("text")
        if not isinstance(text, str):
            raise InputError(f"{where}: 'text' must be a string")
        if doc_id in seen_docs:
            raise InputError(f"{where}: duplicate document id {doc_id!r} (first on line {seen_docs[doc_id]})")
        seen_docs[doc_id] = lineno
        title = row.get("title") or ""
        meta = {"title": str(title)}
        if isinstance(row.get("metadata"), dict):
            meta = {**row["metadata"], **meta}
        documents.append(Document(id=doc_id, text=text, metadata=meta))
    if not documents:
        raise InputError(f"{corpus_file}: no documents")
    text_of = {d.id: d.text for d in documents}

    queries_file = path / "queries.jsonl"
    queries: dict[str, Query] = {}
    for lineno, row in read_jsonl_objects(queries_file):
        where = f"{queries_file}:{lineno}"
        qid = _required_str(row, "_id", where)
        text = _required_str(row, "text", where)
        if qid in queries:
            raise InputError(f"{where}: duplicate query id {qid!r}")
        queries[qid] = Query(qid, text, _answers(row, where), _references(row, where, text_of))

    qrels = _read_qrels(path, split, set(queries), set(text_of))
    if qrels:
        # BEIR evaluates the queries of the split's qrels; span / answer datasets may add unjudged ones
        selected = [q for q in queries.values() if q.id in qrels or q.references or q.answers]
    else:
        selected = list(queries.values())
    if not selected:
        raise InputError(f"{queries_file}: no queries to evaluate")
    return Dataset(path.name, path, documents, selected, qrels)


def _answers(row: dict, where: str) -> tuple[str, ...]:
    answers = row.get("answers", row.get("answer"))
    if answers is None:
        return ()
    if isinstance(answers, str):
        answers = [answers]
    if not isinstance(answers, list) or not all(isinstance(a, (str, int, float)) for a in answers):
        raise InputError(f"{where}: 'answers' must be a string or a list of strings")
    return tuple(str(a) for a in answers)


def _references(row: dict, where: str, text_of: dict[str, str]) -> tuple[Span, ...]:
    refs = row.get("references")
    if refs is None:
        return ()
    if not isinstance(refs, list):
        raise InputError(f"{where}: 'references' must be a list of {{doc_id, start, end}} (or {{doc_id, text}})")
    spans: list[Span] = []
    for i, ref in enumerate(refs):
        at = f"{where}: references[{i}]"
        if not isinstance(ref, dict) or "doc_id" not in ref:
            raise InputError(f"{at}: needs 'doc_id' and either 'start'/'end' or 'text'")
        doc_id = str(ref["doc_id"])
        if doc_id not in text_of:
            raise InputError(f"{at}: unknown doc_id {doc_id!r}")
        doc_text = text_of[doc_id]
        if "start" in ref and "end" in ref:
            start, end = ref["start"], ref["end"]
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
                raise InputError(f"{at}: 'start' and 'end' must be integers (character offsets), got {start!r} "
                                 f"and {end!r}")
            if start >= end:
                raise InputError(f"{at}: span [{start}, {end}) is empty: 'end' must be greater than 'start' "
                                 "(end is exclusive)")
            if not 0 <= start < end <= len(doc_text):
                raise InputError(f"{at}: span [{start}, {end}) is not inside document {doc_id!r} "
                                 f"(length {len(doc_text)})")
        elif isinstance(ref.get("text"), str) and ref["text"]:
            start = doc_text.find(ref["text"])
            if start < 0:
                raise InputError(f"{at}: excerpt not found verbatim in document {doc_id!r}: {ref['text'][:60]!r}")
            again = doc_text.find(ref["text"], start + 1)
            if again >= 0:  # which one is meant cannot be known, and the first would be a silent guess
                raise InputError(f"{at}: excerpt found more than once in document {doc_id!r} (at characters "
                                 f"{start} and {again}): give 'start' and 'end', or a longer excerpt: "
                                 f"{ref['text'][:60]!r}")
            end = start + len(ref["text"])
        else:
            raise InputError(f"{at}: needs 'start'/'end' (characters) or a non-empty 'text' excerpt")
        spans.append((doc_id, start, end))
    return tuple(spans)


def _read_qrels(path: Path, split: str, query_ids: set[str], doc_ids: set[str]) -> dict[str, dict[str, int]]:
    folder = path / "qrels"
    if not folder.is_dir():
        return {}
    files = [folder / f"{split}.tsv"] if (folder / f"{split}.tsv").is_file() else sorted(folder.glob("*.tsv"))
    if len(files) > 1:
        raise InputError(f"{folder}: no {split}.tsv and several other splits ({', '.join(f.name for f in files)}); "
                         "choose one with 'split:'")
    qrels: dict[str, dict[str, int]] = {}
    for qfile in files:
        with qfile.open(encoding="utf-8", newline="") as fh:
            for lineno, cols in enumerate(csv.reader(fh, delimiter="\t"), 1):
                if not cols or not "".join(cols).strip():
                    continue
                if lineno == 1 and cols[0] in ("query-id", "query_id", "qid"):
                    continue
                where = f"{qfile}:{lineno}"
                if len(cols) == 4:  # TREC qrels: qid 0 docid rel
                    cols = [cols[0], cols[2], cols[3]]
                if len(cols) != 3:
                    raise InputError(f"{where}: expected 'query-id<TAB>corpus-id<TAB>score', got {len(cols)} columns")
                qid, doc, score = cols
                try:
                    rel = int(float(score))
                except ValueError:
                    raise InputError(f"{where}: score {score!r} is not a number") from None
                if qid not in query_ids:
                    raise InputError(f"{where}: query id {qid!r} is not in queries.jsonl")
                if doc not in doc_ids:
                    raise InputError(f"{where}: corpus id {doc!r} is not in corpus.jsonl")
                qrels.setdefault(qid, {})[doc] = rel
    return qrels


# ------------------------------------------------------------------------------------- your own folder

def _questions_file(path: Path) -> Path | None:
    for name in ("questions.jsonl", "questions.yaml", "questions.yml"):
        if (path / name).is_file():
            return path / name
    return None


def _question_rows(qfile: Path) -> list[tuple[str, dict[str, Any]]]:
    if qfile.suffix == ".jsonl":
        return [(f"{qfile}:{lineno}", row) for lineno, row in read_jsonl_objects(qfile)]
    try:  # YAML 1.2 scalars: an answer "no" stays "no" (YAML 1.1 reads it as false)
        data = loads_yaml(qfile.read_text(encoding="utf-8"), str(qfile))
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    if not isinstance(data, list):
        raise InputError(f"{qfile}: expected a list of questions")
    rows = []
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise InputError(f"{qfile}: item {i} must be a mapping with 'question'")
        rows.append((f"{qfile}: item {i}", row))
    return rows


def read_documents(folder: Path, skip: Sequence[Path] = ()) -> list[Document]:
    """Every text file under ``folder`` (sorted; :func:`rag.documents.text_files`: not in hidden folders, and a
    folder that cannot be listed is an error), id = POSIX path relative to ``folder``."""
    skip_set = {p.resolve() for p in skip}
    documents = []
    for file in text_files(folder, TEXT_SUFFIXES):
        if file.resolve() in skip_set:
            continue
        try:
            text = file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{file}: not UTF-8 text (byte {exc.start})") from None
        rel = file.relative_to(folder).as_posix()
        documents.append(Document(id=rel, text=text, metadata={"title": file.stem, "path": rel}))
    return documents


def load_folder(path: str | Path) -> Dataset:
    """Documents from ``path/documents/`` (or ``path`` itself) and questions from ``questions.jsonl|yaml``."""
    path = Path(path)
    qfile = _questions_file(path)
    if qfile is None:
        raise InputError(f"{path}: no questions.jsonl or questions.yaml")
    doc_dir = path / "documents" if (path / "documents").is_dir() else path
    documents = read_documents(doc_dir, skip=[qfile])
    if not documents:
        raise InputError(f"{doc_dir}: no text documents found")
    text_of = {d.id: d.text for d in documents}
    queries: list[Query] = []
    qrels: dict[str, dict[str, int]] = {}
    for n, (where, row) in enumerate(_question_rows(qfile)):
        text = row.get("question", row.get("text"))
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: missing 'question'")
        qid = str(row.get("id", row.get("_id", f"q{n}")))
        if any(q.id == qid for q in queries):
            raise InputError(f"{where}: duplicate question id {qid!r}")
        refs = _references(row, where, text_of)
        gold = row.get("gold_docs", row.get("doc_ids", []))
        if isinstance(gold, str):
            gold = [gold]
        if not isinstance(gold, list):
            raise InputError(f"{where}: 'gold_docs' must be a list of document ids (paths under documents/)")
        for doc in gold:
            if str(doc) not in text_of:
                raise InputError(f"{where}: gold document {doc!r} not found under {doc_dir}")
            qrels.setdefault(qid, {})[str(doc)] = 1
        for doc, _, _ in refs:
            qrels.setdefault(qid, {}).setdefault(doc, 1)
        queries.append(Query(qid, text, _answers(row, where), refs))
    if not queries:
        raise InputError(f"{qfile}: no questions")
    return Dataset(path.name, path, documents, queries, qrels)

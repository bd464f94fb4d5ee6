"""The text one macro-window of a sentence-transformers model holds: from the loaded model, or read from its
files when a config is read (late chunking checks ``window_overlap`` against it before any model is loaded)."""
from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

import numpy as np

from rag.encodings import without_lone_surrogates
from rag.errors import ConfigError

__all__ = ["model_tokens", "model_window", "model_word_pieces", "window_from_files"]


def model_window(st_model) -> int:
    """Word pieces of text one macro-window holds: the model's maximum length less its [CLS] / [SEP] tokens."""
    tokenizer = st_model[0].tokenizer
    return (int(st_model.max_seq_length) - (tokenizer.cls_token_id is not None)
            - (tokenizer.sep_token_id is not None))


def model_tokens(tokenizer, text: str) -> tuple[list[int], np.ndarray]:
    """The model's word pieces of ``text`` (no [CLS] / [SEP], never truncated) and their character spans in it, as
    an ``(n, 2)`` array. Lone surrogates are read as U+FFFD (same length), so the spans stay the text's."""
    encoded = _encoded(tokenizer, text)
    return encoded["input_ids"], np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)


def model_word_pieces(tokenizer, text: str) -> tuple[np.ndarray, np.ndarray]:
    """The character spans of ``text``'s word pieces (as :func:`model_tokens`) and, per piece, whether it continues
    the word of the piece before it (a ``##`` piece): a slice of the text that starts or ends there is tokenized
    into other pieces, often more."""
    encoded = _encoded(tokenizer, text)
    words = np.array([-1 if word is None else word for word in encoded.word_ids()], dtype=np.int64)
    continues = np.zeros(len(words), dtype=bool)
    continues[1:] = (words[1:] == words[:-1]) & (words[1:] >= 0)
    return np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2), continues


def _encoded(tokenizer, text: str):
    if not getattr(tokenizer, "is_fast", True):  # QA: a KeyError 'offset_mapping'
        raise ConfigError(f"late chunking maps word pieces to characters, which needs a fast (Rust) tokenizer; the "
                          f"embedding model {tokenizer.name_or_path!r} has a {type(tokenizer).__name__}, which has "
                          "none", "embedder.model")
    return tokenizer(without_lone_surrogates(text), add_special_tokens=False, return_offsets_mapping=True,
                     truncation=False, verbose=False)


def _json_file(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


class _Unreadable(Exception):
    """A model file that is there but is not what its name says: its loader would fail on it too."""


def _json_object(path: str) -> dict[str, Any]:
    """The JSON object in the file; ``{}`` when there is no such file; :class:`_Unreadable` when it is not a JSON
    object."""
    if not os.path.exists(path):
        return {}
    found = _json_file(path)
    if not isinstance(found, dict):
        raise _Unreadable(path)
    return found


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def window_from_files(model: str, document_prefix: str = "") -> tuple[int, int, int] | None:
    """``(window, prefix tokens, max_seq_length)`` of the embedding model ``model`` read from its local files
    without loading it: the word pieces one macro-window holds as :func:`model_window` computes it (the
    sentence_bert_config.json ``max_seq_length``, else the smaller of the tokenizer's ``model_max_length`` and the
    config's ``max_position_embeddings``, as sentence-transformers decides; less the [CLS] / [SEP] its tokenizer
    files name) and the tokens ``document_prefix`` takes in each window. A name is looked up in the Hugging Face
    cache (its snapshot's files; nothing is downloaded). ``None`` when the files can't tell (a model not cached, a
    folder without them): the check then runs when the model is loaded."""
    from rag.embedding import hub_cache_snapshot, resolve_model_path

    try:
        path = resolve_model_path(model)
    except ConfigError:
        return None
    if not os.path.isdir(path):
        path = hub_cache_snapshot(path)
        if path is None:
            return None
    return _window_in_directory(os.path.realpath(path), document_prefix)


@lru_cache(maxsize=32)
def _window_in_directory(path: str, document_prefix: str) -> tuple[int, int, int] | None:
    try:
        return _read_window(path, document_prefix)
    except _Unreadable:  # the model's own loader reports it, when it is loaded
        return None


def _read_window(path: str, document_prefix: str) -> tuple[int, int, int] | None:
    modules = _json_file(os.path.join(path, "modules.json"))
    folder = path
    if isinstance(modules, list):
        transformer = next((m for m in modules if isinstance(m, dict)
                            and str(m.get("type", "")).endswith("Transformer")), None)
        if transformer is None:
            return None
        folder = os.path.join(path, str(transformer.get("path") or ""))
    tokenizer_config = {**_json_object(os.path.join(folder, "special_tokens_map.json")),
                        **_json_object(os.path.join(folder, "tokenizer_config.json"))}
    if "cls_token" not in tokenizer_config and "sep_token" not in tokenizer_config:
        return None
    length = _json_object(os.path.join(folder, "sentence_bert_config.json")).get("max_seq_length")
    if length is not None and not _positive_int(length):
        return None
    if length is None:
        limits = [tokenizer_config.get("model_max_length"),
                  _json_object(os.path.join(folder, "config.json")).get("max_position_embeddings")]
        limits = [n for n in limits if _positive_int(n)]
        if not limits:
            return None
        length = min(limits)
    window = length - bool(tokenizer_config.get("cls_token")) - bool(tokenizer_config.get("sep_token"))
    if window < 1:
        return None
    prefix_tokens = 0
    if document_prefix:
        if not os.path.isfile(os.path.join(folder, "tokenizer.json")):
            return None
        from tokenizers import Tokenizer

        # as in the text's own tokenization: the tokens ending within the prefix (trailing space joins the text)
        stem = without_lone_surrogates(document_prefix).rstrip()
        try:
            tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        except Exception:  # a file the tokenizers library cannot read: the check runs when the model is loaded
            return None
        tokenizer.no_padding()
        tokenizer.no_truncation()
        encoding = tokenizer.encode(without_lone_surrogates(document_prefix), add_special_tokens=False)
        prefix_tokens = sum(1 for _, end in encoding.offsets if end <= len(stem))
    return window, prefix_tokens, length

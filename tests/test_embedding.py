"""The embedder: the bundled MiniLM, offline, cached by (model identity, text hash)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from rag.embedding import Embedder


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    return Embedder("minilm", cache_dir=tmp_path_factory.mktemp("emb-cache"))


def test_bundled_minilm_gives_unit_vectors_of_384_dims(minilm):
    vecs = minilm.embed(["late chunking pools token embeddings", "bm25 is lexical"])
    assert vecs.shape == (2, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_second_embedding_of_the_same_text_makes_no_model_call(minilm, tmp_path):
    texts = [f"sentence number {i} about retrieval" for i in range(5)]
    first = minilm.embed(texts)
    calls = minilm.model_calls
    again = Embedder("minilm", cache_dir=minilm._cache.path.parent)  # a new process would see the same cache
    again._st = minilm._st
    second = again.embed(texts + texts[:2])
    assert again.model_calls == 0 and minilm.model_calls == calls
    assert np.allclose(first, second[:5])


def test_without_a_cache_equal_texts_get_equal_vectors_in_one_model_call_each(minilm):
    # QA: embedded in different batches, equal sentence windows differed by ~1e-7, and the semantic chunker's
    # cluster variant broke their ties differently in chunk() and chunk_documents()
    e = Embedder("minilm", cache=False)
    e._st = minilm._st
    same = "the same sentence."
    texts = [same] * 3 + [f"another sentence, {'long ' * i}" for i in range(40)] + [same]
    vectors = e.embed(texts)
    assert e.model_calls == 41 and vectors.shape == (44, 384)
    assert all(np.array_equal(vectors[0], vectors[i]) for i in (1, 2, 43))
    assert np.allclose(vectors[3:43], e.embed(texts[3:43]), atol=1e-6)


def test_queries_and_documents_are_cached_separately_when_prefixes_differ(tmp_path, minilm):
    e = Embedder("minilm", cache_dir=tmp_path, query_prefix="query: ")
    e._st = minilm._st
    d = e.embed(["same text"])
    q = e.embed_queries(["same text"])
    assert not np.allclose(d, q)


def test_texts_over_the_model_limit_are_reported_with_counts(minilm, caplog):
    long_text = "word " * 600
    with caplog.at_level(logging.WARNING):
        minilm.embed([long_text, "short"])
    assert "1 of 1 texts exceed" in caplog.text or "1 of 2 texts exceed" in caplog.text
    assert minilm.truncated >= 1


def test_unloadable_model_is_a_clear_error(tmp_path):
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="nothing is downloaded"):
        Embedder(str(tmp_path / "no-model"), cache=False).embed(["x"])


def test_models_in_folders_of_the_same_name_never_share_an_identity_and_a_copy_keeps_it(tmp_path):
    # the identity (cache key, index manifest) was the folder's name alone: a second model at /y/model returned
    # the vectors cached for /x/model
    import shutil

    from rag.embedding import Embedder

    first, second = tmp_path / "x" / "model", tmp_path / "y" / "model"
    first.mkdir(parents=True)
    (first / "config.json").write_text('{"hidden_size": 4}')
    (first / "model.safetensors").write_bytes(bytes(range(256)) * 9000)  # samples from start, middle and end differ
    shutil.copytree(first, second)
    copy = tmp_path / "z" / "model"
    shutil.copytree(first, copy)
    weights = bytearray((second / "model.safetensors").read_bytes())
    weights[len(weights) // 2] ^= 1  # one changed byte, in the middle of the weights
    (second / "model.safetensors").write_bytes(bytes(weights))
    identities = [Embedder(model=str(path), cache=False).identity for path in (first, second, copy)]
    assert identities[0] != identities[1] and identities[0] == identities[2]
    assert identities[0].startswith("model@")


def test_a_directory_holding_no_model_is_refused_before_any_file_under_it_is_read(tmp_path, monkeypatch):
    # Embedder('/usr').identity fingerprinted every file under /usr before the model failed to load
    import rag.embedding
    from rag.errors import ConfigError

    fingerprinted = []
    monkeypatch.setattr(rag.embedding, "directory_fingerprint", lambda d: fingerprinted.append(d) or "0" * 12)
    (tmp_path / "models" / "a").mkdir(parents=True)
    (tmp_path / "models" / "a" / "modules.json").write_text("[]")
    with pytest.raises(ConfigError, match="is a directory with no model in it"):
        Embedder(str(tmp_path / "models"), cache=False).identity
    assert fingerprinted == []
    assert Embedder(str(tmp_path / "models" / "a"), cache=False).identity.startswith("a@000000000000|")


def test_an_os_error_while_fingerprinting_a_model_directory_is_a_config_error(tmp_path, monkeypatch):
    import pathlib

    from rag.errors import ConfigError

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")

    def unreadable(self, pattern):
        raise PermissionError(13, "Permission denied", str(tmp_path / "model" / "locked"))

    monkeypatch.setattr(pathlib.Path, "rglob", unreadable)
    with pytest.raises(ConfigError, match="model directory .* could not be read .*Permission denied"):
        Embedder(str(tmp_path / "model"), cache=False).identity


def test_a_device_or_cache_folder_the_embedder_cannot_use_is_named_before_any_model_loads(tmp_path):
    # QA: a bad device was reported as "could not load embedding model 'minilm' ... Use 'minilm'", and a cache folder
    # that cannot be made as a bare "No such file or directory"
    from rag.errors import ConfigError

    with pytest.raises(ConfigError, match="embedder device 'bogus' is not a torch device"):
        Embedder("minilm", device="bogus", cache=False).st
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=f"embedder cache_dir '{blocker / 'sub'}': the embedding cache cannot be made"):
        Embedder("minilm", cache_dir=blocker / "sub")


def test_threads_using_an_embedder_first_at_once_load_its_model_once(monkeypatch):
    # QA: a semantic chunker's embedder first used from 4 threads at once loaded the model 4 times (a service's
    # start: 4 loads of time and memory); a shared Resources made one embedder per thread
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import sentence_transformers

    from rag.embedding import Embedder
    from rag.resources import Resources

    loads = []

    class SlowModel:
        def __init__(self, path, device=None):
            from tokenizers import Tokenizer, models

            loads.append(threading.get_ident())
            time.sleep(0.2)  # a load takes a while: the other threads ask meanwhile
            self.tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "the": 1}, unk_token="[UNK]"))

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", SlowModel)
    embedder = Embedder("minilm", cache=False)
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: embedder.st, range(4)))
    assert len(loads) == 1 and all(m is models[0] for m in models)
    resources = Resources({"model": "minilm", "cache": False})
    with ThreadPoolExecutor(4) as pool:
        embedders = list(pool.map(lambda _: resources.embedder, range(4)))
    assert all(e is embedders[0] for e in embedders)

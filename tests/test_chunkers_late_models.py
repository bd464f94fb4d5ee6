"""Late chunking with sentence-transformers models other than MiniLM, built tiny and random here: a Dense head after
the pooling, CLS pooling, a default prompt, a slow tokenizer, a directory without its tokenizer files."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")

from chunkers import get_chunker  # noqa: E402
from chunkers.model_window import model_tokens  # noqa: E402
from rag.errors import ConfigError  # noqa: E402
from rag.resources import Resources  # noqa: E402

CORPUS = ["The quick brown fox jumps over the lazy dog. Late chunking pools token embeddings per chunk.",
          "Berlin is the capital of Germany. Paris is the capital of France. passage: query: 0123456789"]
TEXT = "The quick brown fox jumps. The lazy dog sleeps. Berlin is the capital of Germany."


def build_model(directory, pooling: str = "mean", dense: int | None = None) -> str:
    """A 2-layer, 32-wide random BERT with a WordPiece tokenizer trained on :data:`CORPUS`, saved as a
    sentence-transformers model: Transformer, Pooling(``pooling``), an optional Dense to ``dense``, Normalize."""
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    with warnings.catch_warnings():  # sentence-transformers 6 moved the modules and warns at the old path
        warnings.simplefilter("ignore", DeprecationWarning)
        from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    core = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=False)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.train_from_iterator(CORPUS * 3, trainers.WordPieceTrainer(
        vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", core.token_to_id("[CLS]")),
                                                 ("[SEP]", core.token_to_id("[SEP]"))])
    tokenizer = BertTokenizerFast(tokenizer_object=core, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                                  cls_token="[CLS]", mask_token="[MASK]")
    torch.manual_seed(0)
    raw = directory / "raw"
    BertModel(BertConfig(vocab_size=core.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=64)
    modules = [transformer, Pooling(32, pooling_mode=pooling)] + ([Dense(32, dense)] if dense else []) + [Normalize()]
    path = directory / "model"
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    shutil.rmtree(raw)
    return str(path)


def late_vectors(model: str, text: str = TEXT, **embedder) -> tuple[list, np.ndarray, object]:
    resources = Resources(embedder={"model": model, "cache": False, **embedder})
    chunker = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 8}, window_overlap=8)
    chunks, vectors = chunker.chunk_with_embeddings(text, resources)
    return chunks, vectors, resources.embedder


def test_a_dense_head_projects_the_pooled_vectors_into_the_models_space(tmp_path):
    # QA: the pooled half kept the transformer's 32 dimensions: a broadcast error mixed with the chunk's own 16-dim
    # vector, and with context_weight 1 an index of 32-dim vectors for 16-dim queries
    import torch

    model = build_model(tmp_path, dense=16)
    chunks, vectors, embedder = late_vectors(model)
    assert vectors.shape == (len(chunks), 16) == (len(chunks), embedder.dim)
    # context_weight 1 on one short text: the mean of each chunk's token states, then the head (Dense, Normalize)
    pooled = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 8}, window_overlap=8, context_weight=1.0)
    chunks, vectors = pooled.chunk_with_embeddings(TEXT, Resources(embedder={"model": model, "cache": False}))
    st = embedder.st
    ids, offsets = model_tokens(st.tokenizer, TEXT)
    with torch.no_grad():
        states = st[0].auto_model(input_ids=torch.tensor([[st.tokenizer.cls_token_id, *ids,
                                                           st.tokenizer.sep_token_id]])).last_hidden_state[0, 1:-1]
    for chunk, vector in zip(chunks, vectors):
        inside = (offsets[:, 1] > chunk.start) & (offsets[:, 0] < chunk.end)
        features = {"sentence_embedding": states[torch.from_numpy(inside)].mean(0, keepdim=True)}
        with torch.no_grad():
            for module in list(st)[2:]:
                features = module(features)
        np.testing.assert_allclose(vector, features["sentence_embedding"][0].numpy(), atol=1e-5)


def test_a_model_that_does_not_mean_pool_is_refused_unless_its_chunks_are_embedded_on_their_own(tmp_path):
    # QA: a CLS-pooling model got mean-pooled chunk vectors (cosine 0.13 with its own embedding of the same text)
    model = build_model(tmp_path, pooling="cls")
    with pytest.raises(ConfigError, match="embedder.model: .*pools its sentence vectors with 'cls'.*context_weight: 0"):
        late_vectors(model)
    independent = get_chunker("late", boundaries={"op": "sentence", "chunk_size": 8}, context_weight=0.0)
    chunks, vectors = independent.chunk_with_embeddings(TEXT, Resources(embedder={"model": model, "cache": False}))
    assert vectors.shape == (len(chunks), 32)


def test_the_models_default_prompt_opens_every_macro_window_as_it_opens_each_chunks_own_text(tmp_path):
    # QA: the chunk's own embedding had the model's prompt ('passage: ') and the macro-windows did not; a model with a
    # default prompt is the same model without it given that prompt as document_prefix
    import json

    plain = build_model(tmp_path)
    prompted = shutil.copytree(plain, tmp_path / "prompted")
    settings = json.loads((prompted / "config_sentence_transformers.json").read_text())
    settings.update(prompts={"document": "passage: ", "query": "query: "}, default_prompt_name="document")
    (prompted / "config_sentence_transformers.json").write_text(json.dumps(settings))
    prompted = str(prompted)
    chunks, with_prompt, _ = late_vectors(prompted)
    same, with_prefix, _ = late_vectors(plain, document_prefix="passage: ")
    assert [(c.start, c.end) for c in chunks] == [(c.start, c.end) for c in same]
    np.testing.assert_allclose(with_prompt, with_prefix, atol=1e-5)


class CTRLTokenizer:
    """Stands for a transformers tokenizer with no fast version (the CTRL one): no character offsets."""
    is_fast = False
    name_or_path = "/models/ctrl-like"


def test_a_tokenizer_without_character_offsets_is_named():
    # QA: a slow (Python) tokenizer has no offset mapping: a KeyError 'offset_mapping'
    with pytest.raises(ConfigError, match="needs a fast .*'/models/ctrl-like' has a CTRLTokenizer"):
        model_tokens(CTRLTokenizer(), "the fox")


def test_a_model_directory_without_its_tokenizer_files_is_refused_when_it_loads(tmp_path):
    # QA: transformers built a tokenizer of special tokens only, every word one [UNK]: all vectors nearly alike
    model = build_model(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        (tmp_path / "model" / name).unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="no vocabulary, only its special tokens.*lacks its tokenizer files"):
        Resources(embedder={"model": model, "cache": False}).embedder.embed(["the quick fox"])

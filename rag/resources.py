"""Long-lived, shared resources a pipeline's operators use: the embedder, tokenizers, generators.

They are created lazily, once per pipeline, so a flow that never embeds never loads a model.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from rag.embedding import Embedder
from rag.once import made_once
from rag.tokens import DEFAULT_TOKENIZER, TiktokenTokenizer, get_tokenizer


class Resources:
    def __init__(self, embedder: Mapping[str, Any] | None = None, generator: Mapping[str, Any] | str | None = None,
                 tokenizer: str = DEFAULT_TOKENIZER):
        self.embedder_config = dict(embedder or {})
        self.generator_config = generator if generator is not None else "extractive"
        self.tokenizer_name = tokenizer
        self._embedder: Embedder | None = None
        self.progress = False
        self.cache_queries = True  # see Embedder.cache_queries
        self._generators: dict[str, Any] = {}

    @property
    def embedder(self) -> Embedder:
        embedder = made_once(self, "_embedder", lambda: Embedder(**self.embedder_config))
        embedder.show_progress = self.progress
        embedder.cache_queries = self.cache_queries
        return embedder

    def tokenizer(self, name: str | None = None) -> TiktokenTokenizer:
        return get_tokenizer(name or self.tokenizer_name)

    def generator(self, spec: Mapping[str, Any] | str | None = None):
        """The generator for ``spec`` (a name like ``"extractive"`` or a mapping with ``name`` and options);
        ``None`` means the pipeline's default generator."""
        from rag.generation import create_generator

        spec = self.generator_config if spec is None else spec
        key = json.dumps(spec, sort_keys=True, default=str)
        if key not in self._generators:
            self._generators[key] = create_generator(spec, self)
        return self._generators[key]

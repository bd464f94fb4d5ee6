"""Atomic, checksummed index directories.

Layout::

    DIR/CURRENT               the name of the live version ("v000003"), replaced atomically
    DIR/v000003/manifest.json format version, config, model identity, counts, sha256 of every file
    DIR/v000003/...           documents.jsonl, chunks.jsonl, structures/<name>/...

A write goes to a fresh temporary directory; only when every file is written and synced is the version
renamed into place and ``CURRENT`` swapped with ``os.replace``. A crash at any point leaves the previous
version live. Loading reads JSON and plain arrays only.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

from rag.errors import IndexStoreError

FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_tree(root: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())


def current_version(directory: Path) -> Path | None:
    pointer = directory / CURRENT
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    if not name.startswith("v") or "/" in name or not (directory / name).is_dir():
        raise IndexStoreError(f"{pointer}: points to {name!r}, which is not a version directory")
    return directory / name


def write_version(directory: Path, write: Callable[[Path], dict[str, Any]]) -> Path:
    """Write a new version with ``write(tmp_dir) -> manifest fields`` and make it live atomically."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise IndexStoreError(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CURRENT).exists():
        raise IndexStoreError(f"{directory} is not empty and is not a ragloom index; choose another --index-dir")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexStoreError(f"cannot create the index directory {directory}: {exc.strerror or exc}") from None
    previous = current_version(directory)
    number = int(previous.name[1:]) + 1 if previous else 1
    tmp = directory / f".tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        fields = write(tmp)
        files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {"format_version": FORMAT_VERSION, **fields, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
        _fsync_tree(tmp)
        final = directory / f"v{number:06d}"
        os.replace(tmp, final)
        pointer_tmp = directory / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
        pointer_tmp.write_text(final.name, encoding="utf-8")
        with pointer_tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(pointer_tmp, directory / CURRENT)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in directory.iterdir():
        if old.is_dir() and old.name.startswith(("v", ".tmp-")) and old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_manifest(directory: Path, verify: bool = True) -> tuple[Path, dict[str, Any]]:
    """The live version directory and its manifest; checksums verified when ``verify``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise IndexStoreError(f"index directory not found: {directory}")
    version = current_version(directory)
    if version is None:
        raise IndexStoreError(f"{directory} is not a ragloom index (no {CURRENT} file); build one with `ragloom index`")
    path = version / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise IndexStoreError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexStoreError(f"{path}: index format {manifest.get('format_version')!r} is not supported "
                              f"(this ragloom reads format {FORMAT_VERSION}); rebuild the index")
    if verify:
        for name, digest in manifest.get("files", {}).items():
            file = version / name
            if not file.is_file():
                raise IndexStoreError(f"{file}: listed in the manifest but missing; the index is incomplete")
            if _sha256(file) != digest:
                raise IndexStoreError(f"{file}: checksum mismatch; the index is corrupted, rebuild it")
    return version, manifest

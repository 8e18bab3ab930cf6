"""On-disk embedding cache: one ``.npz`` per (model, task, evaluation unit, feature).

The file name is derived from a key, the SHA-256 of a JSON description of everything the
embeddings depend on: the checkpoint's content checksum (or the random-init description), the
encoder and front-end settings, the task definition, the metadata CSV's checksum, the audio files'
sizes and modification times, the items whose statistics normalize the front end, the precision
and the cache format. Each file also stores its key and description; on reading, a file that cannot
be read, has another key, the wrong shape or non-finite values is reported and recomputed, and
every write is atomic (:func:`ssl_toolkit.atomic.atomic_write`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..atomic import atomic_write

log = logging.getLogger("ssl_toolkit.eval")

CACHE_FORMAT = "ssl_toolkit.eval.embeddings/1"


def default_cache_dir() -> Path:
    env = os.environ.get("SSL_TOOLKIT_CACHE")
    if env:
        return Path(os.path.expanduser(env)) / "embeddings"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ssl_toolkit" / "embeddings"


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def files_fingerprint(paths) -> str:
    """Hash of (path, size, mtime) of every file (a missing file hashes as missing)."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


class EmbeddingCache:
    def __init__(self, folder: Optional[Path], enabled: bool = True):
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.enabled = enabled
        self.hits = self.misses = self.rejected = 0

    def path_for(self, label: str, key: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)[:80]
        return self.folder / f"{safe}-{key[:24]}.npz"

    def load(self, label: str, description: dict, expect_rows: int) -> Optional[tuple[np.ndarray, dict]]:
        if not self.enabled:
            return None
        key = digest(description)
        path = self.path_for(label, key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                emb = np.asarray(z["embeddings"])
        except Exception as e:  # noqa: BLE001 - truncated zip, bad JSON, missing member...
            log.warning("embedding cache %s is unreadable (%s: %s); recomputing", path, type(e).__name__, e)
            self.rejected += 1
            return None
        problem = None
        if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
            problem = "it was written for other inputs (stale)"
        elif emb.ndim != 2 or emb.shape[0] != expect_rows:
            problem = f"it holds {emb.shape} embeddings, expected {expect_rows} rows"
        elif emb.dtype != np.float32 or not np.isfinite(emb).all():
            problem = "it holds non-finite or non-float32 values"
        if problem:
            log.warning("embedding cache %s ignored: %s; recomputing", path, problem)
            self.rejected += 1
            return None
        self.hits += 1
        return emb, meta.get("extra", {})

    def save(self, label: str, description: dict, embeddings: np.ndarray, extra: Optional[dict] = None) -> None:
        if not self.enabled:
            return
        key = digest(description)
        path = self.path_for(label, key)
        meta = {"format": CACHE_FORMAT, "key": key, "description": description, "extra": extra or {}}
        arrays: dict[str, Any] = {
            "embeddings": np.ascontiguousarray(embeddings, dtype=np.float32),
            "meta": np.array(json.dumps(meta, default=str)),
        }
        try:
            atomic_write(path, lambda f: np.savez(f, **arrays))
        except OSError as e:
            log.warning("cannot write the embedding cache %s (%s); continuing without it", path, e)

    def get_or_compute(
        self, label: str, description: dict, rows: int, compute: Callable[[], tuple[np.ndarray, dict]]
    ) -> tuple[np.ndarray, dict, bool]:
        """(embeddings, extra info, from_cache)."""
        hit = self.load(label, description, rows)
        if hit is not None:
            return hit[0], hit[1], True
        self.misses += 1
        emb, extra = compute()
        emb = np.ascontiguousarray(emb, dtype=np.float32)
        if emb.shape[0] != rows:
            raise RuntimeError(f"embedding produced {emb.shape[0]} rows, expected {rows}")
        self.save(label, description, emb, extra)
        return emb, extra, False

"""The embedding step of audio evaluation: per task, model and fold, through the embedding cache.

Clips are decoded once at the front end's sample rate and embedded with
:func:`ssl_toolkit.audio.embedding.embed_clips`. The front end's ``pre_norm`` statistics are
measured on the task's training clips (EVAR), per fold for k-fold tasks, unless the eval recipe
says ``prenorm: checkpoint`` and the checkpoint has them.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Optional

import numpy as np
import torch

from ..audio.embedding import Pieces, embed_clips, split_frontend
from ..audio.stats import prenorm_stats
from ..recipe import to_plain
from ..views import Pipeline
from .audio_tasks import AudioTaskData, Unit, decode_all, drop_rows
from .cache import EmbeddingCache, digest, files_fingerprint
from .errors import EvalError
from .models import EvalModel

EMBED_FORMAT = "audio-embed/1"
MAX_STATS_PIECES = 10000


def task_prenorm_stats(
    pieces: Pieces, subset: np.ndarray, upstream: list, device, batch_size: int, seed: int = 0
) -> dict:
    """pre_norm statistics (:func:`~ssl_toolkit.audio.stats.prenorm_stats`) of the upstream output
    (log-mel) of up to 10,000 pieces drawn from ``subset`` (BYOL-A / EVAR pre-normalization)."""
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(np.asarray(subset))[:MAX_STATS_PIECES]
    if len(chosen) == 0:
        raise EvalError("pre_norm statistics: no training audio")
    batches = (pieces.batch(idx).to(device) for idx in pieces.batches(batch_size, chosen))
    try:
        with torch.inference_mode():
            stats = prenorm_stats(batches, Pipeline(list(upstream)), len(chosen))
    except ValueError as e:
        raise EvalError(str(e)) from None
    return {"mean": stats["mean"], "std": stats["std"], "n_pieces": int(len(chosen))}


def logmel_features(y: torch.Tensor) -> torch.Tensor:
    """No-learning feature of a log-mel batch (B, 1, F, T): [time-mean, time-max] of each bin (2 × F)."""
    if y.ndim == 4:  # (B, 1, F, T) → (B, F, T)
        y = y.flatten(1, 2)
    if y.ndim != 3:
        raise EvalError(f"logmel baseline: the front end gives {tuple(y.shape)}, expected (B, 1, F, T)")
    return torch.cat([y.mean(-1), y.amax(-1)], dim=1)


class AudioEmbedder:
    """Embeddings of one task's clips, per model and unit, through the cache.

    Clips are decoded once (at the front end's sample rate) and shared by the model and the
    baselines. With ``on_bad_file: skip`` they are decoded up front and unreadable rows dropped
    from ``data`` (so the cache key covers the rows actually used)."""

    def __init__(
        self,
        data: AudioTaskData,
        sample_rate: int,
        cache: EmbeddingCache,
        device: torch.device,
        precision: str,
        batch_size: int,
        prenorm_mode: str,
        seed: int,
        progress: bool = True,
    ):
        self.data, self.sample_rate, self.cache, self.device = data, sample_rate, cache, device
        self.precision, self.batch_size, self.prenorm_mode = precision, batch_size, prenorm_mode
        self.seed, self.progress = seed, progress
        self._waves: Optional[list] = None
        self._pieces: Optional[Pieces] = None
        self._memo: dict[str, tuple[np.ndarray, dict]] = {}
        if data.task.on_bad_file == "skip":
            self.waves()

    def waves(self) -> list:
        if self._waves is None:
            waves = decode_all(self.data, self.sample_rate, self.progress)
            bad = {i for i, w in enumerate(waves) if w is None}
            if bad:
                self.data = drop_rows(self.data, bad)
                waves = [w for w in waves if w is not None]
            self._waves = waves
        return self._waves

    def pieces(self) -> Pieces:
        if self._pieces is None:
            self._pieces = Pieces.cut(
                self.waves(), self.data.task.unit_sec, self.sample_rate, self.data.task.long_clips
            )
        return self._pieces

    def _description(self, feature: str, identity: str, frontend_spec, stats_scope) -> dict:
        t = to_plain(self.data.task)
        for k in ("name", "on_bad_file"):
            t.pop(k, None)
        return {
            "format": EMBED_FORMAT,
            "feature": feature,
            "model": identity,
            "frontend": frontend_spec,
            "sample_rate": self.sample_rate,
            "task": t,
            "csv_sha256": self.data.csv_sha256,
            "files": files_fingerprint(self.data.files),
            "n": len(self.data.files),
            "stats": stats_scope,
            "precision": self.precision if feature == "encoder" else "fp32",
        }

    def uses_task_stats(self, model: Optional[EvalModel], feature: str) -> bool:
        if feature != "encoder" or model is None:
            return False
        _, prenorm, _ = split_frontend(model.frontend)
        return prenorm is not None and (self.prenorm_mode == "task" or not bool(getattr(prenorm, "ready", False)))

    def embeddings(
        self,
        model: Optional[EvalModel],
        unit: Unit,
        feature: str = "encoder",
        frontend: Optional[list] = None,
        frontend_spec=None,
    ) -> tuple[np.ndarray, dict]:
        """(N, D) embeddings of every row for ``unit`` and info (pre_norm statistics, cache hit).

        ``feature``: 'encoder' (the model) or 'logmel' (the front end up to pre_norm, pooled)."""
        if model is not None:
            frontend, identity, spec = model.frontend, model.identity, model.frontend_spec
        elif feature == "logmel" and frontend is not None:
            identity, spec = "front-end", frontend_spec
        else:
            raise ValueError(f"embeddings: feature {feature!r} needs a model (or, for 'logmel', a front end)")
        upstream, prenorm, _ = split_frontend(frontend)
        net: Callable[[torch.Tensor], torch.Tensor]
        if feature == "encoder" and model is not None:  # (model is None only with 'logmel', checked above)
            net, ops, precision, name = model.encoder, frontend, self.precision, model.name
        else:
            net, ops, precision, name = logmel_features, upstream, "fp32", feature
        task_stats = self.uses_task_stats(model, feature)
        if task_stats:
            train_rows = np.sort(unit.train)  # EVAR: the training split's clips (of this fold)
            stats_scope: dict | None = {
                "mode": "task",
                "rows": hashlib.sha256(train_rows.astype(np.int64).tobytes()).hexdigest(),
            }
        elif feature == "encoder" and prenorm is not None:
            stats_scope = {"mode": "checkpoint", "mean": float(prenorm.mean), "std": float(prenorm.std)}
        else:
            stats_scope = None
        desc = self._description(feature, identity, spec, stats_scope)

        def compute():
            extra: dict = {}
            if task_stats:
                pcs = self.pieces()
                in_train = np.zeros(len(self.data.files), dtype=bool)
                in_train[train_rows] = True
                stats = task_prenorm_stats(
                    pcs, np.flatnonzero(in_train[pcs.clip]), upstream, self.device, self.batch_size, self.seed
                )
                prenorm.mean.fill_(stats["mean"])
                prenorm.std.fill_(stats["std"])
                extra["prenorm"] = stats
            elif stats_scope is not None:
                extra["prenorm"] = {k: v for k, v in stats_scope.items() if k != "mode"}
            text = f"{self.data.task.name}: {name}" + ("" if unit.name == "split" else f" ({unit.name})")
            task = self.data.task
            emb = embed_clips(
                self.waves(),
                net,
                ops,
                self.sample_rate,
                task.unit_sec,
                task.long_clips,
                device=self.device,
                batch_size=self.batch_size,
                precision=precision,
                desc=text,
                progress=self.progress,
            )
            return emb, extra

        memo_key = digest(desc)
        if memo_key not in self._memo:
            emb, extra, hit = self.cache.get_or_compute(
                f"{self.data.task.name}-{name}", desc, len(self.data.files), compute
            )
            self._memo[memo_key] = (emb, {**extra, "cached": hit})
        return self._memo[memo_key]

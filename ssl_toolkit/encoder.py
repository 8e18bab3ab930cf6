"""The trained encoder as a library object: what :func:`ssl_toolkit.load_encoder` returns.

Like torchvision's weights (``weights.transforms()``, ``weights.meta``) and timm's ``create_model`` +
``resolve_model_data_config``, one object carries the encoder (``backbone``, the registry module), its
deterministic front end (``transforms()``: uint8 → float → normalize, or wave → log-mel → pre_norm) and its
weights card (``card``). ``Encoder(x)`` runs both; ``embed`` / ``embed_frames`` / ``fit_prenorm`` are the
functions ``ssl-toolkit eval``, ``ssl-toolkit embed`` and the HEAR module run:

- scene embeddings of audio are :func:`ssl_toolkit.audio.embedding.embed_clips`: each clip cut into
  ``unit_sec`` pieces (a clip shorter than ``unit_sec`` is zero-padded to it, as EVAR pads it), the encoder's
  clip embedding of each piece, the mean over a clip's pieces;
- images go through :func:`ssl_toolkit.eval.image.embed_images` (batched by size);
- timestamp embeddings are :func:`ssl_toolkit.hear.get_timestamp_embeddings`.

pre_norm statistics are the checkpoint's (the training data's). Evaluation measures them on each task's
training clips instead (EVAR); ``fit_prenorm(train_waves)`` does the same here.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .engine.build import feature_dim_of
from .eval.errors import EvalError
from .input_files import list_inputs, read_images, read_waves, wave_batch
from .params import is_int_at_least
from .views import Pipeline
from .weights_card import WeightsCard

PRECISIONS = ("fp32", "bf16")
LONG_CLIPS = ("chunks", "crop", "whole")


class FrontEnd(Pipeline):
    """The deterministic front-end ops as one :class:`~ssl_toolkit.views.Pipeline`: no gradient, always in eval
    mode, the same output for a sample whatever batch it is in."""

    def __init__(self, ops: list[nn.Module]):
        super().__init__(ops)
        for p in self.ops.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> "FrontEnd":
        return super().train(False)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.no_grad():
            return super().forward(x, None)


class Encoder(nn.Module):
    """Front end + encoder with their card. Build it with :func:`ssl_toolkit.load_encoder`.

    ``forward(x)``: raw waves (B, T) float in [-1, 1] at ``sample_rate`` (audio) or uint8 images (B, 3, H, W)
    → (B, feature_dim). ``backbone`` is the bare registry encoder (its input is the front end's output)."""

    def __init__(
        self,
        backbone: nn.Module,
        frontend: list[nn.Module],
        *,
        encoder_spec: dict,
        frontend_spec: list,
        unit_sec: Optional[float] = None,
        imports: Sequence[str] = (),
        recipe_name: str = "",
        recipe: Optional[dict] = None,
        source: Optional[dict] = None,
        freeze_bn: bool = False,
    ):
        super().__init__()
        self.backbone = backbone
        self.frontend = FrontEnd(frontend)
        self.encoder_spec, self.frontend_spec = dict(encoder_spec), [dict(s) for s in frontend_spec]
        self.unit_sec = float(unit_sec or 1.0) if self.modality == "audio" else None
        self.imports, self.recipe_name = list(imports), recipe_name
        self.recipe = recipe
        """The resolved training recipe (a plain dict) that the weights carry or sit beside, else None."""
        self.source = dict(source or {})
        """Where the weights come from: ``spec`` (what was passed), ``kind``, ``path``, ``sha256``, ``notes``."""
        self.freeze_bn = freeze_bn

    # ------------------------------------------------------------------ what it is
    @property
    def modality(self) -> Optional[str]:
        """``audio`` | ``image`` | ``vector`` (the encoder class's ``modality``)."""
        return getattr(self.backbone, "modality", None)

    @property
    def feature_dim(self) -> int:
        return feature_dim_of(self.backbone)

    @property
    def sample_rate(self) -> Optional[int]:
        """Audio: the sample rate the front end expects (Hz); None for other modalities."""
        if self.modality != "audio":
            return None
        from .audio.embedding import frontend_sample_rate

        return frontend_sample_rate(list(self.frontend.ops))

    @property
    def device(self) -> torch.device:
        p = next(self.backbone.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    @property
    def card(self) -> WeightsCard:
        """The weights card of this encoder as it is now (front-end op states included, e.g. pre_norm)."""
        states = [{k: v.detach().cpu() for k, v in op.state_dict().items()} for op in self.frontend.ops]
        return WeightsCard(
            encoder=dict(self.encoder_spec),
            frontend=[dict(s) for s in self.frontend_spec],
            frontend_state=states,
            feature_dim=self.feature_dim,
            imports=list(self.imports),
            recipe_name=self.recipe_name,
        )

    @property
    def prenorm(self) -> Optional[dict]:
        """Audio: ``{"mean", "std"}`` of the front end's pre_norm op; None without statistics or without the op."""
        op = self._prenorm_op()
        if op is None or not bool(op.ready):
            return None
        return {"mean": float(op.mean), "std": float(op.std)}

    def transforms(self) -> FrontEnd:
        """The deterministic front end as a module (what ``forward`` applies before ``backbone``)."""
        return self.frontend

    def extra_repr(self) -> str:
        where = self.source.get("path") or self.source.get("spec") or ""
        return f"modality={self.modality}, feature_dim={self.feature_dim}, source={where!r}"

    # ------------------------------------------------------------------ torch
    def train(self, mode: bool = True) -> "Encoder":
        """Train mode for the backbone (BatchNorm too, unless ``freeze_bn``); the front end stays in eval mode."""
        super().train(mode)
        self.frontend.eval()
        if self.freeze_bn:
            for m in self.backbone.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.frontend(x))

    # ------------------------------------------------------------------ embeddings
    def embed(
        self,
        inputs,
        *,
        batch_size: int = 64,
        precision: str = "fp32",
        unit_sec: Optional[float] = None,
        long_clips: str = "chunks",
        image_size: Optional[int] = None,
        progress: bool = False,
    ) -> np.ndarray:
        """(N, feature_dim) float32 embeddings, in the order of ``inputs``: file paths, a folder or an EVAR metadata
        CSV (its files, as :meth:`list_files` lists them), arrays — audio: 1-D float waves at ``sample_rate``
        or the rows of a 2-D array; images: uint8 (3, H, W) or the items of a (B, 3, H, W) batch. Audio: pieces of
        ``unit_sec`` (default: the training recipe's), ``long_clips`` chunks | crop | whole; images: with
        ``image_size`` the shorter side is resized and centre-cropped (paths only)."""
        self._check_options(batch_size, precision, long_clips)
        self._need_file_modality("embed")
        if self.modality == "audio":
            from .audio.embedding import embed_clips

            rate, unit = self._audio_clock("embed", unit_sec)
            waves, names = read_waves(inputs, rate)
            self._need_prenorm("embed")
            if not waves:
                return np.zeros((0, self.feature_dim), dtype=np.float32)
            with self._eval_mode():
                return embed_clips(
                    waves,
                    self.backbone,
                    list(self.frontend.ops),
                    rate,
                    unit,
                    long_clips,
                    device=self.device,
                    batch_size=batch_size,
                    precision=precision,
                    progress=progress,
                    names=names,
                )
        from .eval.image import embed_images  # an image encoder: _need_file_modality let no other through

        if image_size is not None and not is_int_at_least(image_size, 1):
            raise ValueError(f"image_size: expected a positive int (pixels), got {image_size!r}")
        images = read_images(inputs, image_size)
        with self._eval_mode():
            return embed_images(
                images,
                list(self.frontend.ops),
                self.backbone,
                self.device,
                batch_size,
                precision,
                self.feature_dim,
                progress,
            )

    def embed_frames(self, waves, *, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """Audio: ((B, T', D) float32 frame embeddings, (B, T') timestamps in ms) of equal-length waves (B, T) (or
        one 1-D wave), HEAR's convention (:func:`ssl_toolkit.hear.get_timestamp_embeddings`)."""
        from .audio.frames import get_timestamp_embeddings, hear_model
        from .devices import precision_autocast

        rate, _ = self._audio_clock("embed_frames")
        self._check_options(1, precision, "chunks")
        self._need_prenorm("embed_frames")
        batch = wave_batch(waves, rate).to(self.device)
        with self._eval_mode(), torch.inference_mode(), precision_autocast(self.device, precision):
            frames, ts = get_timestamp_embeddings(batch, hear_model(self, "embed_frames"))
        return frames.float(), ts

    def fit_prenorm(
        self,
        waves,
        *,
        unit_sec: Optional[float] = None,
        long_clips: str = "chunks",
        seed: int = 0,
        batch_size: int = 64,
    ) -> dict:
        """Audio: measure the pre_norm statistics on ``waves`` (paths, a folder or arrays; e.g. a task's training
        clips) as evaluation does (up to 10,000 ``unit_sec`` pieces drawn with ``seed``), store them in the front
        end and return ``{"mean", "std", "n_pieces"}``."""
        from .audio.embedding import Pieces, check_waveforms, split_frontend
        from .eval.audio_embedder import task_prenorm_stats

        rate, unit = self._audio_clock("fit_prenorm", unit_sec)
        if not is_int_at_least(seed, 0):
            raise ValueError(f"fit_prenorm: seed must be a non-negative int, got {seed!r}")
        self._check_options(batch_size, "fp32", long_clips)
        op = self._prenorm_op()
        if op is None:
            raise EvalError(
                f"fit_prenorm: the front end ({' → '.join(s['name'] for s in self.frontend_spec)}) has no pre_norm op"
            )
        waves, names = read_waves(waves, rate, "fit_prenorm")
        check_waveforms(waves, names, what="fit_prenorm")
        pieces = Pieces.cut(waves, unit, rate, long_clips)
        upstream, _, _ = split_frontend(list(self.frontend.ops))
        stats = task_prenorm_stats(pieces, np.arange(len(pieces)), upstream, self.device, batch_size, seed)
        op.mean.fill_(stats["mean"])
        op.std.fill_(stats["std"])
        return stats

    def list_files(self, folder: str | os.PathLike) -> list[Path]:
        """The files of this encoder's modality in ``folder`` (recursive, by extension, sorted), or the rows of an
        EVAR metadata CSV: what ``embed`` reads for a folder or CSV and ``ssl-toolkit embed`` lists in ``files``."""
        self._need_file_modality("list_files")
        return list(list_inputs(Path(folder), str(self.modality)).paths)

    # ------------------------------------------------------------------ helpers
    def _prenorm_op(self):
        from .audio.embedding import split_frontend

        return split_frontend(list(self.frontend.ops))[1]

    def _audio_clock(self, what: str, unit_sec: Optional[float] = None) -> tuple[int, float]:
        """An audio encoder's (sample rate, piece length in s: ``unit_sec`` or the training recipe's); ``what``
        names the caller in the errors."""
        from .audio.embedding import frontend_sample_rate

        self._need_modality("audio", what)
        rate = frontend_sample_rate(list(self.frontend.ops))
        if unit_sec is None:
            return rate, float(self.unit_sec or 1.0)
        return rate, self.check_unit_sec(unit_sec, f"{what}: unit_sec")

    def check_unit_sec(self, unit_sec, name: str = "unit_sec") -> float:
        """``unit_sec`` as a float, once it is a positive number of seconds whose piece gives this audio encoder at
        least one frame; else a ValueError / EvalError that names it as ``name``."""
        if isinstance(unit_sec, bool) or not isinstance(unit_sec, numbers.Real) or not 0 < float(unit_sec) < math.inf:
            raise ValueError(f"{name}: expected a positive number of seconds, got {unit_sec!r}")
        from .audio.embedding import frontend_sample_rate

        rate = frontend_sample_rate(list(self.frontend.ops))
        probe = torch.zeros(1, max(1, int(round(float(unit_sec) * rate))), device=self.device)
        prenorm = self._prenorm_op()
        shapes_only = FrontEnd([op for op in self.frontend.ops if op is not prenorm])  # with statistics or without
        try:
            with torch.inference_mode(), self._eval_mode():
                self.backbone(shapes_only(probe))
        except (RuntimeError, ValueError, IndexError) as e:
            raise EvalError(
                f"{name} {unit_sec}: a piece this short does not fit the encoder ({str(e).splitlines()[0]}); "
                "use a longer unit"
            ) from None
        return float(unit_sec)

    def _need_file_modality(self, what: str) -> None:
        if self.modality not in ("audio", "image"):
            raise EvalError(
                f"{what}: encoder {self.encoder_spec.get('name')!r} takes {self.modality or 'unknown'} input; "
                f"{what} reads audio and images (call the encoder on tensors instead)"
            )

    def _need_modality(self, modality: str, what: str) -> None:
        if self.modality != modality:
            raise EvalError(
                f"{what}: needs an {modality} encoder; this one ({self.encoder_spec.get('name')}) takes "
                f"{self.modality or 'unknown'} input"
            )

    def _need_prenorm(self, what: str) -> None:
        op = self._prenorm_op()
        if op is not None and not bool(op.ready):
            raise EvalError(
                f"{what}: the front end's pre_norm has no statistics (the weights carry none, e.g. "
                "official BYOL-A weights): call encoder.fit_prenorm(waves) with your training clips "
                "first (evaluation measures them on each task's training clips)"
            )

    @staticmethod
    def _check_options(batch_size: int, precision: str, long_clips: str) -> None:
        if not is_int_at_least(batch_size, 1):
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        if long_clips not in LONG_CLIPS:
            raise ValueError(f"long_clips: expected one of {', '.join(LONG_CLIPS)}, got {long_clips!r}")

    def _eval_mode(self):
        return _EvalMode(self)


class _EvalMode:
    """Eval mode for the block, the previous modes restored after (embedding a model being fine-tuned)."""

    def __init__(self, module: nn.Module):
        self.module = module

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.module.modules()]
        self.module.eval()

    def __exit__(self, *exc):
        for m, mode in self.modes:
            m.training = mode

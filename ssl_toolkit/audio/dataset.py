"""Audio datasets: a folder of audio files or a metadata CSV, decoded to fixed-length mono segments.

``AudioFolder[i]`` returns ``(wave, label)``: ``wave`` a float32 tensor of ``round(unit_sec ×
sample_rate)`` samples at ``sample_rate`` Hz (mono; zero-padded at the end when the clip is
shorter), ``label`` an int (−1 when unknown). The segment start is drawn per item from
``numpy.random.default_rng((seed, epoch, index))`` uniformly over every valid start, so it is
random, differs between epochs (``set_epoch``) and is exactly reproducible on resume.

Decoding: soundfile for wav/flac/ogg/... (librosa as a fallback for formats libsndfile cannot
read, e.g. m4a), channels averaged to mono, resampled with ``torchaudio.functional.resample``.
Small sets are decoded once into memory at construction (``cache: auto``), so that epochs only
slice arrays and DataLoader workers (forked) share the decoded waves.

Bad files (unreadable, empty, zero length, NaN/inf samples) are reported with their path: as a
:class:`~ssl_toolkit.data.BadItem` (``on_bad_file: skip``, the default) or a
:class:`~ssl_toolkit.data.BadFileError` (``on_bad_file: fail``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch

from ..data import BadFileError, BadItem, visible_files
from ..devices import torch_threads
from ..params import AnyPath, NonNegativeInt, PositiveFloat, PositiveInt, Reference
from ..quoting import first_line
from ..recipe import expand_path
from ..registry import DATASETS
from .metadata import class_ids, read_metadata_csv

log = logging.getLogger("ssl_toolkit.audio")

_SOUNDFILE_FIRST = tuple(".wav .flac .ogg .oga .opus .mp3 .aiff .aif .aifc .au .w64 .rf64 .caf".split())
"""What libsndfile reads: tried with soundfile first, then librosa."""
AUDIO_EXTENSIONS = (*_SOUNDFILE_FIRST, ".m4a", ".aac", ".wma", ".webm")


class AudioDecodeError(ValueError):
    """A file that cannot be used as audio; the message says why."""


# ----------------------------------------------------------------------------- decoding
def _decode(source, suffix: str) -> tuple[np.ndarray, int]:
    """(samples, channels) float32 array and its sample rate, from a path or a binary file object."""
    errors = []
    if suffix.lower() in _SOUNDFILE_FIRST:
        try:
            import soundfile as sf

            if hasattr(source, "seek"):
                source.seek(0)
            data, sr = sf.read(source if hasattr(source, "read") else str(source), dtype="float32", always_2d=True)
            return data, int(sr)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
            msg = str(e).strip().replace(f"Error opening {str(source)!r}: ", "")
            errors.append(f"soundfile: {msg or type(e).__name__}")
    try:
        import librosa

        if hasattr(source, "seek"):
            source.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, sr = librosa.load(
                source if hasattr(source, "read") else str(source), sr=None, mono=False, dtype=np.float32
            )
        data = np.atleast_2d(data).T  # librosa: (channels, samples)
        return np.ascontiguousarray(data), int(sr)
    except Exception as e:  # noqa: BLE001
        errors.append(f"librosa: {first_line(e)}")
    raise AudioDecodeError("unreadable audio (" + "; ".join(errors) + ")")


def _resample(wave: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample single-threaded: on one clip that is far faster (and immune to oversubscription)."""
    import torchaudio.functional as AF

    with torch_threads(1), torch.inference_mode():
        return AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), orig, new).numpy()


def load_audio(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode ``path``, mix to mono and resample to ``sample_rate``: a float32 (samples,) array.

    Raises :class:`AudioDecodeError` for unreadable, empty or non-finite audio.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError("file not found")
    if path.stat().st_size == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    return decode_audio(path, path.suffix, sample_rate)


def decode_audio(source, suffix: str, sample_rate: int) -> np.ndarray:
    """:func:`load_audio` of a path or a binary file object (e.g. a WebDataset sample's bytes) whose format
    ``suffix`` (``.wav``...) names."""
    if hasattr(source, "getbuffer") and source.getbuffer().nbytes == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    data, sr = _decode(source, suffix)
    if data.size == 0 or data.shape[0] == 0:
        raise AudioDecodeError("zero-length audio (no samples)")
    if sr <= 0:
        raise AudioDecodeError(f"invalid sample rate {sr}")
    if not np.isfinite(data).all():
        raise AudioDecodeError("audio contains NaN or inf samples")
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        wave = _resample(wave, sr, sample_rate)
        if wave.shape[0] == 0:
            raise AudioDecodeError(f"too short to resample from {sr} to {sample_rate} Hz")
    return np.ascontiguousarray(wave, dtype=np.float32)


def random_segment(wave: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A ``length``-sample segment of ``wave`` starting uniformly at random; zero-padded at the end
    when ``wave`` is shorter (then it starts at 0)."""
    n = wave.shape[0]
    if n < length:
        out = np.zeros(length, dtype=np.float32)
        out[:n] = wave
        return out
    start = int(rng.integers(0, n - length + 1))  # every start 0 … n−length is possible
    return wave[start : start + length]


# ----------------------------------------------------------------------------- listing
def _split_values(value) -> set[str] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return {str(v).strip() for v in value}
    return {v.strip() for v in str(value).split(",") if v.strip()}


def _size_and_mtime(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size} {st.st_mtime_ns}"


@DATASETS.register("audio_folder")
class AudioFolder(torch.utils.data.Dataset):
    """Audio files from a folder or a metadata CSV as fixed-length mono segments (random crop).

    ``root``: a folder of audio files (searched recursively; the first sub-folder name is the
    label when every file lies in one) or a metadata CSV. ``metadata``: a CSV (relative to
    ``root``) with a ``file_name`` column and optionally ``label``, ``split``, ``fold``;
    ``file_name`` is relative to ``audio_dir`` (relative to ``root``; default: the CSV's folder).
    ``split`` / ``fold`` select rows (comma-separated values allowed). Labels are ids into
    ``classes``, numbered as in evaluation (:func:`~ssl_toolkit.audio.metadata.class_ids`, over the
    whole CSV): names sorted, by number when all are integers.
    """

    def __init__(
        self,
        root: AnyPath,
        metadata: Annotated[str, Reference("file", base="root")] | None = None,
        audio_dir: Annotated[str, Reference("dir", base="root")] | None = None,
        split: str | None = None,
        fold: str | None = None,
        label_column: str = "label",
        fold_column: str = "fold",
        sample_rate: PositiveInt = 16000,
        unit_sec: PositiveFloat = 0.95,
        seed: NonNegativeInt = 0,
        on_bad_file: Literal["skip", "fail"] = "skip",
        cache: Literal["auto", "memory", "none"] = "auto",
        cache_max_mb: NonNegativeInt = 2048,
    ):
        if on_bad_file not in ("skip", "fail"):
            raise ValueError(f"on_bad_file must be 'skip' or 'fail', got {on_bad_file!r}")
        if cache not in ("auto", "memory", "none"):
            raise ValueError(f"cache must be 'auto', 'memory' or 'none', got {cache!r}")
        if sample_rate <= 0 or unit_sec <= 0:
            raise ValueError(f"sample_rate and unit_sec must be positive, got {sample_rate}, {unit_sec}")
        self.root = expand_path(root)
        self.sample_rate, self.unit_sec = int(sample_rate), float(unit_sec)
        self.segment_samples = int(round(self.unit_sec * self.sample_rate))
        self.seed, self.epoch, self.on_bad_file = int(seed), 0, on_bad_file
        self.split, self.fold = split, fold
        self.metadata = None
        if not self.root.exists():
            raise FileNotFoundError(f"audio dataset root not found: {self.root}")
        root_dir = self.root if self.root.is_dir() else self.root.parent
        csv_path = None
        if metadata is not None:
            csv_path = root_dir / expand_path(metadata)  # an absolute path stays as it is
        elif self.root.is_file():
            if self.root.suffix.lower() != ".csv":
                raise ValueError(f"audio dataset root {self.root} is a file but not a .csv metadata file")
            csv_path = self.root
        if csv_path is not None:
            self.metadata = csv_path
            base = csv_path.parent if audio_dir is None else root_dir / expand_path(audio_dir)
            self.base = base
            self.files, self.labels, self.classes = self._from_csv(csv_path, base, label_column, fold_column)
        else:
            if split is not None or fold is not None:
                raise ValueError(
                    f"split/fold select rows of a metadata CSV; {self.root} is read as a plain "
                    "folder (set 'metadata: metadata.csv')"
                )
            base = self.root if audio_dir is None else self.root / expand_path(audio_dir)
            self.base = base
            self.files, self.labels, self.classes = self._from_folder(base)
        if not self.files:
            where = f"{csv_path} (split={split!r}, fold={fold!r})" if csv_path else str(self.root)
            raise ValueError(f"audio dataset is empty: no audio files selected from {where}")
        if csv_path is not None and not any(os.path.isfile(f) for f in self.files):
            raise ValueError(
                f"none of the {len(self.files)} audio files listed in {csv_path} exists (looked in "
                f"{base}, e.g. {self.files[0]}); set audio_dir to where the files are"
            )
        self._cache: dict[int, np.ndarray | str] = {}
        self.cache_mode = cache
        self._cache_budget = int(cache_max_mb) * 2**20
        self.cached = False
        if cache == "memory" or (cache == "auto" and self._estimated_bytes() <= self._cache_budget):
            self.preload()

    # -------------------------------------------------------------- listing
    def _from_csv(self, csv_path: Path, base: Path, label_column: str, fold_column: str):
        if not csv_path.is_file():
            raise FileNotFoundError(f"audio metadata CSV not found: {csv_path}")
        table = read_metadata_csv(csv_path)
        rows, columns = table.rows, table.columns
        raw = [r[label_column] for r in rows] if label_column in columns else [None] * len(rows)
        labels, classes = class_ids(raw)  # over the whole CSV: every split/fold selection numbers alike
        keep = list(range(len(rows)))
        for col, wanted in (("split", self.split), (fold_column, self.fold)):
            values = _split_values(wanted)
            if values is None:
                continue
            if col not in columns:
                raise ValueError(f"{csv_path}: selecting {col}={wanted!r} needs a '{col}' column")
            known = sorted({rows[i][col] for i in keep})
            missing = values - set(known)
            if missing:
                raise ValueError(f"{csv_path}: no rows with {col} in {sorted(missing)}; values present: {known}")
            keep = [i for i in keep if rows[i][col] in values]
        return [base / rows[i]["file_name"] for i in keep], [labels[i] for i in keep], classes

    def _from_folder(self, base: Path):
        if not base.is_dir():
            raise FileNotFoundError(f"audio folder not found: {base}")
        files = visible_files(base, AUDIO_EXTENSIONS)
        rel = [p.relative_to(base) for p in files]
        if files and all(len(r.parts) > 1 for r in rel):
            labels, classes = class_ids([r.parts[0] for r in rel])
        else:
            labels, classes = [-1] * len(files), []
        return files, labels, classes

    # -------------------------------------------------------------- caching
    def _estimated_bytes(self) -> int:
        """Decoded size at the target rate, from the file headers (inf when unknown or too many)."""
        if len(self.files) > 50_000:
            return 2**62
        import soundfile as sf

        total = 0
        for p in self.files:
            try:
                info = sf.info(str(p))
                total += int(info.frames / max(info.samplerate, 1) * self.sample_rate * 4) + 4096
            except Exception:  # noqa: BLE001 - unknown sizes: assume 10 s
                total += 10 * self.sample_rate * 4
            if total > self._cache_budget:
                break
        return total

    def preload(self) -> None:
        """Decode and resample every file into memory now (bad files are remembered as such).

        Done in the main process before DataLoader workers start, so forked workers share it."""
        with torch_threads(1):
            for i in range(len(self.files)):
                if i not in self._cache:
                    self._cache[i] = self._load(i)
        self.cached = True

    def _load(self, index: int) -> np.ndarray | str:
        """The decoded wave of item ``index``, or the reason it cannot be used."""
        try:
            wave: np.ndarray | str = load_audio(self.files[index], self.sample_rate)
        except AudioDecodeError as e:
            wave = str(e)
        except Exception as e:  # noqa: BLE001 - never crash half-way because of one file
            wave = f"{type(e).__name__}: {e}"
        if self.on_bad_file == "fail" and isinstance(wave, str):
            raise BadFileError(f"{self.files[index]}: {wave}")
        return wave

    def _wave(self, index: int) -> np.ndarray | str:
        hit = self._cache.get(index)
        return hit if hit is not None else self._load(index)

    # -------------------------------------------------------------- dataset protocol
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int):
        wave = self._wave(index)
        if isinstance(wave, str):
            return BadItem(str(self.files[index]), wave)
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        segment = random_segment(wave, self.segment_samples, rng)
        return torch.from_numpy(np.array(segment, dtype=np.float32)), int(self.labels[index])

    def describe(self) -> dict:
        """What identifies this dataset's items (keys cached statistics): the files' names relative to the data
        folder (so moving or re-mounting it keeps the key) and their sizes and modification times (so rewriting
        a clip under the same name does not)."""
        names = "\n".join(str(p.relative_to(self.base)) if p.is_relative_to(self.base) else str(p) for p in self.files)
        stats = "\n".join(_size_and_mtime(p) for p in self.files)
        return {
            "metadata": self.metadata.name if self.metadata else None,
            "split": self.split,
            "fold": self.fold,
            "num_files": len(self.files),
            "files_sha1": hashlib.sha1(names.encode()).hexdigest(),
            "contents_sha1": hashlib.sha1(stats.encode()).hexdigest(),
            "sample_rate": self.sample_rate,
            "unit_sec": self.unit_sec,
        }

    @property
    def stats_dir(self) -> Path:
        """Where statistics computed on this dataset are stored: beside the data."""
        folder = self.root if self.root.is_dir() else self.root.parent
        return folder / ".ssl_toolkit"

    def __repr__(self) -> str:
        src = self.metadata or self.root
        return (
            f"AudioFolder({src}, {len(self)} files, split={self.split!r}, {self.sample_rate} Hz, "
            f"{self.unit_sec} s, {len(self.classes) or 'no'} classes)"
        )

"""Probe monitor: a labelled downstream score of the online encoder, logged while training ("above random yet?").

solo-learn and lightly run an online kNN on the validation set; here any task of an eval recipe serves, on frozen
features: ``trainer.hooks: [{name: probe, recipe: recipes/eval/emodb.yaml, every_epochs: 10}]``. The task's
training items (its ``train`` and ``valid`` rows, at most ``max_train``) fit a fast probe that scores its ``test``
rows (at most ``max_test``; both capped by a seeded subsample drawn once, so every measurement sees the same items):

- ``knn`` (images' default): the weighted cosine kNN of the eval recipe's ``knn`` settings (Wu et al. 2018, eq. 5
  with its k and temperature), on raw features;
- ``ridge`` (audio's default): closed-form ridge regression onto one-hot targets on standardized features
  (scikit-learn ``RidgeCV``), its penalty chosen among 10^-3..10^4 by exact leave-one-out error on the training
  items. A linear read-out like EVAR's probe, at a fraction of its cost and without a random number.

The score (accuracy, or mAP for multi-label tasks) is logged as ``monitor_<task>`` at the first log step of every
``every_epochs``-th epoch and at the last step, with ``monitor_<task>_init``: the same
probe on the encoder before step 0 (kept in checkpoints, so a resumed run shows the same scale). Items go through
the views' eval front end (uint8→float / log-mel → pre_norm, normalize) and the encoder in
eval mode, under the run's autocast; the hook draws no random number from torch's or numpy's global generators and
changes no weight or buffer, so the losses are bit-identical with it on or off. Under DDP only rank 0 computes.
Audio clips are embedded as in eval (``unit_sec`` pieces of the task, averaged), with ``pre_norm`` statistics measured
once on the probe's training clips (EVAR, as ``ssl-toolkit eval``): the encoder trains on batch-normalized input
(BYOL-A's post-norm), and the run's statistics would feed another task's clips off that scale (measured on the demo:
ridge 45.7 % with the run's statistics, 59.1 % with the task's, on the same weights).
"""

from __future__ import annotations

import copy
import re
from typing import Annotated, Any, Literal, Optional

import numpy as np
import torch

from ..data import BadItem
from ..params import REFERENCE_CHECKS, PositiveInt, Reference
from ..registry import ENCODERS, HOOKS, RegistryError
from .hooks import Monitor

RIDGE_ALPHAS = tuple(10.0**e for e in range(-3, 5))
MAX_KEPT_BYTES = 512 * 2**20  # audio: front-end output kept between measurements


def ridge_probe(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, num_classes: int, multi_label: bool = False
) -> np.ndarray:
    """Test outputs (N_test, C) of ridge regression onto one-hot (or multi-hot) targets, standardized inputs,
    the penalty chosen by leave-one-out error (scikit-learn's efficient generalized cross-validation)."""
    from sklearn.linear_model import RidgeCV

    from ..eval.protocols import standardize

    x_train, x_test = standardize(x_train, x_test)
    targets = np.asarray(y_train, dtype=np.float64) if multi_label else np.eye(num_classes)[np.asarray(y_train)]
    model = RidgeCV(alphas=np.asarray(RIDGE_ALPHAS)).fit(x_train.astype(np.float64), targets)
    return np.asarray(model.predict(x_test.astype(np.float64))).reshape(len(x_test), -1)


def _capped(rows: np.ndarray, cap: int, seed: int) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).permutation(rows)[:cap]) if len(rows) > cap else np.sort(rows)


def probe_task(recipe_path, task_name: Optional[str] = None):
    """(eval recipe, the task a probe scores): the recipe's one task, or the one named ``task_name``."""
    from ..eval.schema import load_eval_recipe
    from ..recipe.errors import RecipeError

    try:
        recipe = load_eval_recipe(recipe_path)
    except (RecipeError, OSError, ValueError) as e:
        raise ValueError(f"probe: recipe {recipe_path}: {e}") from None
    tasks = recipe.parsed_tasks
    names = [t.name for t in tasks]
    if task_name is None:
        if len(tasks) != 1:
            raise ValueError(
                f"probe: {recipe_path} has {len(tasks)} tasks ({', '.join(names)}); name one with task: <name>"
            )
        return recipe, tasks[0]
    if task_name not in names:
        raise ValueError(f"probe: no task {task_name!r} in {recipe_path} (tasks: {', '.join(names)})")
    return recipe, tasks[names.index(task_name)]


def check_probe_recipe(path, siblings: dict, context: Optional[dict]) -> Optional[str]:
    """A probe's recipe must be an eval recipe with the task it names, of the modality the encoder takes."""
    from ..eval.schema import AudioTask

    try:
        _, task = probe_task(path, siblings.get("task"))
    except ValueError as e:
        return str(e).removeprefix("probe: ")
    encoder = ((context or {}).get("model") or {}).get("encoder")
    name = encoder.get("name") if isinstance(encoder, dict) else encoder
    try:
        takes = getattr(ENCODERS.get(name).builder, "modality", None) if isinstance(name, str) else None
    except RegistryError:
        takes = None  # model.encoder.name gets its own error
    kind = "audio" if isinstance(task, AudioTask) else "image"
    if takes is not None and takes != kind:
        return (
            f"task '{task.name}' of eval recipe {path} is an {kind} task, but model.encoder ({name}) takes "
            f"{takes} input; name an eval recipe of {takes} tasks"
        )
    return None


REFERENCE_CHECKS["eval_recipe"] = check_probe_recipe


@HOOKS.register("probe")
class ProbeMonitor(Monitor):
    """A fast probe on one eval task's frozen features, every ``every_epochs`` epochs (``monitor_<task>``)."""

    order = 41
    label = "probe"
    # the probe's items, set when the run starts: audio clips (a list of waveforms) or a uint8 image tensor, and labels
    x_train: Any
    x_test: Any
    y_train: np.ndarray
    y_test: np.ndarray

    def __init__(
        self,
        recipe: Annotated[str, Reference("eval_recipe")],
        task: Optional[str] = None,
        every_epochs: PositiveInt = 1,
        probe: Literal["auto", "knn", "ridge"] = "auto",
        max_train: PositiveInt = 2000,
        max_test: PositiveInt = 1000,
        batch_size: PositiveInt = 128,
    ):
        super().__init__()
        if probe not in ("auto", "knn", "ridge"):
            raise ValueError(f"probe: probe must be 'auto', 'knn' or 'ridge', got {probe!r}")
        for name, v in (
            ("every_epochs", every_epochs),
            ("max_train", max_train),
            ("max_test", max_test),
            ("batch_size", batch_size),
        ):
            if int(v) < 1:
                raise ValueError(f"probe: {name} must be >= 1, got {v}")
        self.recipe_path, self.task_name, self.probe = str(recipe), task, probe
        self.every, self.max_train, self.max_test = int(every_epochs), int(max_train), int(max_test)
        self.batch_size = int(batch_size)
        self.next_epoch: Optional[int] = None
        self.frontend_out: dict = {}  # audio: role → kept (owner clips, front-end output) batches

    @property
    def state_key(self) -> str:  # several probes may run side by side
        return f"ProbeMonitor[{self.recipe_path}:{self.task_name or ''}]"

    def state_dict(self) -> dict:
        return {"init": self.init, "next_epoch": self.next_epoch} if self.init else {}

    def load_state_dict(self, state: dict) -> None:
        self.init, self.next_epoch = state.get("init") or {}, state.get("next_epoch")

    # ------------------------------------------------------------------ setup
    def _task(self):
        return probe_task(self.recipe_path, self.task_name)

    def on_start(self, run):
        super().on_start(run)  # a resumed run measures where the uninterrupted one would have
        if self.next_epoch is None:
            self.next_epoch = self.every
        if not run.is_main:
            return
        from ..eval.schema import AudioTask

        recipe, task = self._task()
        self.column = "monitor_" + re.sub(r"\W+", "_", task.name)
        self.modality = "audio" if isinstance(task, AudioTask) else "image"
        encoder_modality = getattr(run.learner.method.encoder, "modality", None)
        if encoder_modality is not None and encoder_modality != self.modality:
            raise ValueError(
                f"probe: task {task.name!r} of {self.recipe_path} is an {self.modality} task, but this "
                f"run trains an {encoder_modality} encoder"
            )
        self.kind = self.probe if self.probe != "auto" else ("knn" if self.modality == "image" else "ridge")
        self.knn = recipe.knn
        views = run.learner.views
        self.frontend = [op for op in (*views.input.ops, *views.joint.ops) if op.eval_frontend]
        (self._load_audio if self.modality == "audio" else self._load_images)(run, task, recipe.seed)
        self.label = f"probe {task.name}"
        if isinstance(self.init, float):  # a checkpoint written before the init values were keyed by column
            self.init = {self.column: self.init}
        if not self.init:
            self.init = self.timed_measure(run)
            run.log(
                f"probe {task.name} ({self.kind}, {len(self.y_train)} train / {len(self.y_test)} test items) "
                f"at random init: {100 * self.init[self.column]:.1f} %"
            )

    def _load_audio(self, run, task, seed: int) -> None:
        from ..audio.embedding import Pieces, frontend_sample_rate, split_frontend
        from ..eval.audio_embedder import task_prenorm_stats
        from ..eval.audio_tasks import decode_all, load_task

        data = load_task(task)
        unit = data.units[0]
        fit = unit.train if unit.valid is None else np.concatenate([unit.train, unit.valid])
        rows = {"train": _capped(fit, self.max_train, seed), "test": _capped(unit.test, self.max_test, seed + 1)}
        self.sample_rate = frontend_sample_rate(self.frontend)
        self.task, self.multi_label, self.num_classes = task, data.multi_label, data.num_classes
        for role, idx in rows.items():
            sub = type(data)(
                task,
                data.csv_path,
                data.base,
                [data.files[i] for i in idx],
                data.labels[idx],
                data.classes,
                [],
                data.csv_sha256,
            )
            waves = decode_all(sub, self.sample_rate, progress=False)
            ok = [i for i, w in enumerate(waves) if w is not None]
            setattr(self, f"x_{role}", [waves[i] for i in ok])
            setattr(self, f"y_{role}", data.labels[idx][ok])
        upstream, prenorm, rest = split_frontend(self.frontend)
        if prenorm is not None:  # a copy: the run's own pre_norm keeps its statistics
            pieces = Pieces.cut(self.x_train, task.unit_sec, self.sample_rate, task.long_clips)
            stats = task_prenorm_stats(
                pieces, np.arange(len(pieces)), upstream, run.learner.device, self.batch_size, seed
            )
            prenorm = copy.deepcopy(prenorm)
            prenorm.mean.fill_(stats["mean"])
            prenorm.std.fill_(stats["std"])
            self.frontend = [*upstream, prenorm, *rest]

    def _load_images(self, run, task, seed: int) -> None:
        from ..eval.image import load_task

        data = load_task(task)
        self.multi_label, self.num_classes = False, data.num_classes
        parts = {
            "train": [data.splits["train"]] + ([data.splits["valid"]] if "valid" in data.splits else []),
            "test": [data.splits["test"]],
        }
        for role, splits in parts.items():
            pairs = [(s, i) for s in splits for i in range(len(s.dataset))]
            cap = self.max_train if role == "train" else self.max_test
            chosen = _capped(np.arange(len(pairs)), cap, seed + (role == "test"))
            xs, ys = [], []
            for j in chosen:
                split, i = pairs[j]
                item = split.dataset[i]
                if not isinstance(item, BadItem):
                    xs.append(torch.as_tensor(item[0]))
                    ys.append(int(split.labels[i]))
            setattr(self, f"x_{role}", torch.stack(xs))
            setattr(self, f"y_{role}", np.asarray(ys, dtype=np.int64))

    # ------------------------------------------------------------------ measuring
    def _features(self, run, role: str) -> np.ndarray:
        from ..audio.embedding import embed_batches, frontend_batches
        from .rankme import online_features

        items = getattr(self, f"x_{role}")
        if self.modality == "image":
            return online_features(run, items, self.frontend, self.batch_size)[0].numpy()
        batches = self.frontend_out.get(role)
        if batches is None:
            batches = self._keeping(
                role,
                frontend_batches(
                    items,
                    self.frontend,
                    self.sample_rate,
                    self.task.unit_sec,
                    self.task.long_clips,
                    device=run.learner.device,
                    batch_size=self.batch_size,
                ),
            )
        encoder = run.learner.method.encoder
        mode = encoder.training
        encoder.eval()
        try:
            return embed_batches(batches, encoder, len(items), precision=run.recipe.precision)
        finally:
            encoder.train(mode)

    def _keeping(self, role: str, batches):
        """Passes ``batches`` through and keeps them for the next measurements while all kept front-end output
        fits in MAX_KEPT_BYTES (the front end has no weights, so its output does not change)."""
        room = MAX_KEPT_BYTES - sum(x.nbytes for done in self.frontend_out.values() for _, x in done)
        kept: Optional[list] = []
        for clip, x in batches:
            if kept is not None:
                room -= x.nbytes
                if room >= 0:
                    kept.append((clip, x))
                else:
                    kept = None
            yield clip, x
        if kept is not None:
            self.frontend_out[role] = kept

    def measure(self, run) -> dict:
        """The probe's test score of the online encoder now."""
        from ..eval.protocols import knn_predict, score

        train, test = self._features(run, "train"), self._features(run, "test")
        if self.kind == "knn":
            out = knn_predict(train, self.y_train, test, self.num_classes, self.knn.k, self.knn.temperature)
        else:
            out = ridge_probe(train, self.y_train, test, self.num_classes, self.multi_label)
        return {self.column: float(score(out, self.y_test, self.multi_label))}

    def due(self, run) -> bool:
        return run.pos.epoch >= self.next_epoch

    def advance(self, run) -> None:
        self.next_epoch = (run.pos.epoch // self.every + 1) * self.every

"""Eval recipes: a typed schema validated with the training recipes' machinery.

An eval recipe names the downstream tasks and the protocol settings::

    name: fsdd
    model:                       # the model when the checkpoint brings no recipe (random, encoder.pt,
      encoder: {name: audiontt2020, feature_d: 2048}     #  official weights); override: true forces it
      frontend: [{name: log_mel, frontend: torchaudio_mel}, {name: pre_norm}]
    tasks:
      - {name: digits, kind: audio_classification, metadata: ../shared/data/fsdd/metadata.csv,
         audio_dir: recordings, unit_sec: 1.0}

Every error is a :class:`~ssl_toolkit.recipe.RecipeError` naming the file and key path, with a
did-you-mean for misspelled keys, task kinds and component names. Task paths (``metadata``,
``audio_dir``, dataset ``path``/``root``) are relative to the working directory, like training
recipes; ``~`` and ``$VARS`` are expanded.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Literal, Optional, Sequence, Union

from ..params import Reference
from ..recipe import Component, Origins, Validator, import_tree_components, load_resolved_tree, to_plain
from ..recipe.schema import ranged
from ..registry import did_you_mean
from .label_subsets import fraction_list

TASK_KINDS = ("audio_classification", "image_classification")
PROTOCOLS = ("linear", "knn", "finetune")
Protocol = Literal["linear", "knn", "finetune"]


@dataclasses.dataclass
class ModelSpec:
    """What to evaluate when the checkpoint has no stored recipe (``random``, a bare ``encoder.pt``,
    official BYOL-A weights), or always when ``override: true``."""

    encoder: Optional[Component] = dataclasses.field(default=None, metadata={"registry": "encoders"})
    frontend: Optional[list[Component]] = dataclasses.field(default=None, metadata={"registry": "augmentations"})
    """Deterministic ops from the raw batch to the encoder input (e.g. log_mel + pre_norm, or
    to_float + normalize). Default: the training recipe's views.input ops plus its normalize ops."""
    override: bool = False
    """true: use encoder/frontend even when the checkpoint has a recipe (its weights must fit)."""


@dataclasses.dataclass
class LinearConfig:
    """EVAR's linear evaluation: one linear layer on standardized frozen embeddings."""

    lr: float = 3e-4
    weight_decay: float = 1e-8
    batch_size: int = 200
    """Mini-batch size; min(batch_size, number of training items)."""
    epochs: int = 200
    patience: int = 20
    """Stop after this many epochs without a better validation score; the best weights are restored."""
    runs: int = 3
    """Seeds (seed, seed+1, ...); the table reports mean ± std over them."""
    valid_fraction: float = 0.1
    """Held out of the training items (stratified) for early stopping when a task has no valid rows."""


@dataclasses.dataclass
class KnnConfig:
    """Weighted kNN (InstDisc / solo-learn): cosine similarity, top-k neighbours weighted exp(s / T)."""

    k: int = 200
    temperature: float = 0.1


@dataclasses.dataclass
class FinetuneConfig:
    """The ``finetune`` protocol (eval/finetune.py): encoder + a new head (BatchNorm1d without affine + Linear,
    as EVAR's ``finetune.py``) trained end to end with SGD, linear warm-up then cosine decay per step (EVAR's timm
    ``CosineLRScheduler``: from 0, to 1e-7); the best epoch on the validation items is restored for the test, or
    the last one is tested (``select_epoch``)."""

    epochs: int = 100
    warmup_epochs: float = 5.0
    lr: float = 0.01
    """For the loss as stated (cross-entropy averaged over the batch, summed over classes; EVAR's ``loss_nll`` also
    averages over the classes, so EVAR's lr L equals lr L / num_classes here)."""
    baseline_lr: Optional[float] = None
    """The lr of the random-init baseline (= supervised from scratch), which usually wants a larger one than a
    pretrained encoder; null: ``lr``."""
    batch_size: int = 256
    """min(batch_size, number of training items)."""
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    mixup: float = 0.0
    """Beta(α, α) mixup of inputs and labels per sample (EVAR: of the waveforms; images: of the front end's
    output, which for to_float + normalize equals mixing pixels); 0 = off."""
    augment: list[Component] = dataclasses.field(default_factory=list, metadata={"registry": "augmentations"})
    """Random ops run on the front end's output per sample (audio: spec_augment, random_resize_crop; images:
    random_resized_crop, horizontal_flip, which commute with normalize)."""
    patience: int = 0
    """Stop after this many epochs without a better validation score (0: run every epoch; EVAR: -1)."""
    select_epoch: Literal["best", "last"] = "best"
    """The epoch tested: ``best`` validation score (EVAR) or ``last`` (BYOL App. C.1's fixed epochs; for validation
    sets too small to choose an epoch, e.g. 20 items at 1 % of the labels)."""
    runs: int = 3
    """Seeds (seed, seed+1, ...) per system and label fraction."""
    valid_fraction: float = 0.1
    """Held out of the (labelled) training items, stratified, when a task has no valid rows; never the test rows."""
    freeze_bn: bool = False
    """Keep the encoder's BatchNorm statistics frozen (eval mode) while its weights train."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Autocast of the encoder's forward and backward (auto = the recipe's ``precision``)."""


@dataclasses.dataclass
class PlotConfig:
    enabled: bool = True
    confusion: bool = True
    tsne: bool = True
    tsne_points: int = ranged(1000, "[5, inf)")
    """Test items drawn (stratified, fixed seed) for the t-SNE map."""
    tsne_iterations: int = ranged(500, "[250, inf)")
    """Optimization iterations of the t-SNE map (≥ 250, the early-exaggeration phase). 1000 points × 500
    iterations keep the maps under ~10 % of an eval's time (benchmarks/results/bench_eval_plots.md)."""


@dataclasses.dataclass
class AudioTask:
    """An audio classification task in EVAR's metadata format (file_name, label, split | fold)."""

    name: str
    kind: Literal["audio_classification"]
    metadata: str = dataclasses.field(metadata={"reference": Reference("file")})
    """CSV with a file_name column (relative to audio_dir), the label column and split or fold."""
    unit_sec: float
    """Clip length embedded at once: shorter clips are zero-padded, longer ones handled by long_clips."""
    audio_dir: Optional[str] = dataclasses.field(
        default=None, metadata={"reference": Reference("dir", base="metadata")}
    )
    """Where file_name resolves; default: the CSV's folder. Relative paths are relative to the CSV's folder."""
    label_column: str = "label"
    split_column: str = "split"
    """Values train / valid / test (or mapped with split_values). Ignored when fold_column is set."""
    split_values: Optional[dict] = None
    """Derive the split from another column: {test: [values], valid: [values], train: [values]}.
    Values may be "a-b" integer ranges; rows not listed go to train unless train is listed."""
    fold_column: Optional[str] = None
    """k-fold cross-validation: each fold value is the test set once, the others train."""
    multi_label: bool = False
    """Labels are comma-joined class lists; the metric is mAP."""
    long_clips: Literal["chunks", "whole", "crop"] = "chunks"
    """Clips longer than unit_sec: 'chunks' embeds unit_sec windows and averages them, 'whole' embeds
    the clip at once (the encoder pools over time), 'crop' keeps the first unit_sec (as EVAR)."""
    on_bad_file: Literal["fail", "skip"] = "fail"
    """An unreadable clip stops the evaluation (fail) or is left out and reported (skip)."""
    protocols: list[Protocol] = dataclasses.field(default_factory=lambda: ["linear"])
    label_fraction: Any = 1.0
    """Few-label evaluation: a fraction in (0, 1] or a list, e.g. [0.01, 0.1, 1.0] (eval/label_subsets.py)."""


@dataclasses.dataclass
class ImageTask:
    """An image classification task on a registered image dataset (as in training recipes)."""

    name: str
    kind: Literal["image_classification"]
    dataset: Component = dataclasses.field(metadata={"registry": "datasets", "supplied": ("split",)})
    protocols: list[Protocol] = dataclasses.field(default_factory=lambda: ["linear", "knn"])
    train_split: Optional[str] = "train"
    test_split: Optional[str] = "test"
    valid_split: Optional[str] = None
    """A split used for early stopping; default: valid_fraction of train held out."""
    label_fraction: Any = 1.0
    """Few-label evaluation: a fraction in (0, 1] or a list, e.g. [0.01, 0.1, 1.0] (eval/label_subsets.py)."""


Task = Union[AudioTask, ImageTask]


@dataclasses.dataclass
class EvalRecipe:
    name: str
    tasks: list[dict]
    """Audio or image tasks, each with a unique name and a kind."""
    description: str = ""
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    linear: LinearConfig = dataclasses.field(default_factory=LinearConfig)
    knn: KnnConfig = dataclasses.field(default_factory=KnnConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)
    baselines: list[Literal["random", "logmel"]] = dataclasses.field(default_factory=lambda: ["random", "logmel"])
    """Shown beside the model in every table: 'random' (the model's encoder, random init) and, for
    audio tasks, 'logmel' (no learning: time-mean and time-max of each log-mel bin)."""
    prenorm: Literal["task", "checkpoint"] = "task"
    """pre_norm statistics: from the task's training clips (EVAR) or as stored in the checkpoint."""
    seed: int = 0
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Encoder autocast while embedding (the front end always runs in fp32); auto = bf16."""
    batch_size: int = 64
    """Clips / images per embedding batch."""
    num_workers: int = 0
    cache: bool = True
    cache_dir: Optional[str] = None
    """Embedding cache; default $SSL_TOOLKIT_CACHE or ~/.cache/ssl_toolkit/embeddings."""
    plots: PlotConfig = dataclasses.field(default_factory=PlotConfig)
    out_dir: Optional[str] = None
    """Default: runs/eval-<name>-<checkpoint>-<timestamp>."""
    imports: list[str] = dataclasses.field(default_factory=list)

    # set by load_eval_recipe
    parsed_tasks: list = dataclasses.field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        d = to_plain(self)
        d.pop("parsed_tasks", None)
        return d


def _check_distinct_splits(task: ImageTask, path: tuple, validator: Validator) -> None:
    """An image task's train, test and (given) valid splits are different splits of its dataset: a valid split that
    is the test split would pick epochs on the test data (``null`` twice is the whole dataset twice)."""
    named = [("train_split", task.train_split), ("test_split", task.test_split)]
    if task.valid_split is not None:
        named.append(("valid_split", task.valid_split))
    for i, (key, value) in enumerate(named):
        for earlier, other in named[:i]:
            if value == other:
                validator.fail(
                    path + (key,),
                    f"{value!r} is also the task's {earlier}: train, valid and test must be different splits "
                    "(the test split is read once, at the end)",
                )


def _check_task_list(tasks: Any, validator: Validator) -> list:
    if not isinstance(tasks, list) or not tasks:
        validator.fail(("tasks",), "expected a non-empty list of tasks")
    parsed: list = []
    seen: dict[str, int] = {}
    for i, t in enumerate(tasks):
        path = ("tasks", i)
        if not isinstance(t, dict):
            validator.fail(path, f"expected a task mapping, got {type(t).__name__} {t!r}")
        kind = t.get("kind")
        if kind is None:
            validator.fail(path + ("kind",), f"required value missing (one of {', '.join(TASK_KINDS)})")
        if kind not in TASK_KINDS:
            validator.fail(
                path + ("kind",),
                f"unknown task kind {kind!r}{did_you_mean(kind, TASK_KINDS)}; known: {', '.join(TASK_KINDS)}",
            )
        cls = AudioTask if kind == "audio_classification" else ImageTask
        task = validator.dataclass(cls, t, path)
        if task.name in seen:
            validator.fail(path + ("name",), f"task name {task.name!r} is used twice (tasks {seen[task.name]} and {i})")
        if "/" in task.name or not task.name.strip():
            validator.fail(path + ("name",), f"task names must be non-empty and free of '/', got {task.name!r}")
        seen[task.name] = i
        if not task.protocols:
            validator.fail(path + ("protocols",), f"expected at least one of {', '.join(PROTOCOLS)}")
        if len(set(task.protocols)) != len(task.protocols):
            validator.fail(path + ("protocols",), f"a protocol is listed twice: {task.protocols}")
        try:
            task.label_fraction = fraction_list(task.label_fraction)
        except ValueError as e:
            validator.fail(path + ("label_fraction",), str(e))
        if isinstance(task, AudioTask):
            if not task.unit_sec > 0:
                validator.fail(path + ("unit_sec",), f"must be > 0, got {task.unit_sec}")
            if task.split_values is not None:
                bad = [k for k in task.split_values if k not in ("train", "valid", "test")]
                if bad:
                    validator.fail(
                        path + ("split_values", bad[0]),
                        "split names are train, valid, test" + did_you_mean(bad[0], ('train', 'valid', 'test')),
                    )
                if task.fold_column is not None:
                    validator.fail(path + ("split_values",), "split_values and fold_column exclude each other")
        else:
            _check_distinct_splits(task, path, validator)
        parsed.append(task)
    return parsed


def validate_eval_tree(tree: dict, origins: Origins, check_files: bool = True) -> EvalRecipe:
    import_tree_components(tree, origins)
    validator = Validator(origins, tree, check_files)
    recipe = validator.dataclass(EvalRecipe, tree, ())
    recipe.parsed_tasks = _check_task_list(tree.get("tasks"), validator)
    lin = recipe.linear
    for key, ok in (
        ("epochs", lin.epochs >= 1),
        ("runs", lin.runs >= 1),
        ("batch_size", lin.batch_size >= 1),
        ("patience", lin.patience >= 1),
        ("lr", lin.lr > 0),
        ("valid_fraction", 0 < lin.valid_fraction < 1),
    ):
        if not ok:
            validator.fail(("linear", key), f"out of range: {getattr(lin, key)!r}")
    ft = recipe.finetune
    for key, ok in (
        ("epochs", ft.epochs >= 1),
        ("runs", ft.runs >= 1),
        ("batch_size", ft.batch_size >= 2),
        ("lr", ft.lr > 0),
        ("baseline_lr", ft.baseline_lr is None or ft.baseline_lr > 0),
        ("warmup_epochs", 0 <= ft.warmup_epochs <= ft.epochs),
        ("momentum", 0 <= ft.momentum < 1),
        ("weight_decay", ft.weight_decay >= 0),
        ("mixup", ft.mixup >= 0),
        ("patience", ft.patience >= 0),
        ("valid_fraction", 0 < ft.valid_fraction < 1),
    ):
        if not ok:
            validator.fail(("finetune", key), f"out of range: {getattr(ft, key)!r}")
    if ft.patience and ft.select_epoch == "last":
        validator.fail(("finetune", "patience"), "early stopping needs select_epoch: best (last runs every epoch)")
    if recipe.knn.k < 1 or not recipe.knn.temperature > 0:
        validator.fail(("knn",), "k must be >= 1 and temperature > 0")
    if recipe.batch_size < 1:
        validator.fail(("batch_size",), f"must be >= 1, got {recipe.batch_size}")
    validator.check_references()
    return recipe


def load_eval_recipe(path: str | os.PathLike, overrides: Sequence[str] = (), check_files: bool = True) -> EvalRecipe:
    """Load (with ``base:`` inheritance and ``key=value`` overrides) and validate an eval recipe; every task's files
    (metadata CSV, audio folder, dataset paths) are checked to exist unless ``check_files`` is False."""
    tree, origins = load_resolved_tree(path, overrides)
    return validate_eval_tree(tree, origins, check_files)


def eval_recipe_from_dict(tree: dict, source: str = "eval recipe", check_files: bool = True) -> EvalRecipe:
    """Validate an in-memory eval recipe mapping (tests, notebooks)."""
    origins = Origins()
    origins.record(tree, source)
    return validate_eval_tree(dict(tree), origins, check_files)

"""ssl_toolkit.Encoder: one code path for the API, ``ssl-toolkit embed``, eval's embeddings and the HEAR module (the
same file gives the same vector through each, for short, unit-length and long real files), the pre_norm statistics
it uses, fine-tuning mode, and clear errors."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ssl_toolkit as sslt
import ssl_toolkit.hear as hear
from ssl_toolkit.audio.dataset import load_audio
from ssl_toolkit.cli import main
from ssl_toolkit.eval.audio_embedder import AudioEmbedder
from ssl_toolkit.eval.audio_tasks import load_task
from ssl_toolkit.eval.cache import EmbeddingCache
from ssl_toolkit.eval.checkpoints import resolve_checkpoint
from ssl_toolkit.eval.models import make_models, write_random_checkpoint
from ssl_toolkit.eval.schema import eval_recipe_from_dict
from ssl_toolkit.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

DEMO = ROOT / "data" / "demo"
# real files: 0.30 s and 0.59 s (FSDD, 8 kHz) and 2.0 s (EmoDB); the unit is the second file's exact length, so the
# three are shorter than, exactly, and longer than one piece
FILES = [
    DEMO / "fsdd_mini" / "recordings" / "0_george_0.wav",
    DEMO / "fsdd_mini" / "recordings" / "0_george_1.wav",
    DEMO / "emodb" / "wav" / "03a01Fa.flac",
]
UNIT = 9454 / 16000  # 0_george_1.wav: 4727 samples at 8 kHz → 9454 at 16 kHz
RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The three files in one folder with an EVAR metadata CSV (the first two train, the third test)."""
    folder = tmp_path_factory.mktemp("clips")
    (folder / "audio").mkdir()
    rows = []
    for i, f in enumerate(FILES):
        shutil.copy(f, folder / "audio" / f.name)
        rows.append({"file_name": f.name, "label": f"c{i % 2}", "split": "test" if i == 2 else "train"})
    with open(folder / "meta.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    waves = [load_audio(folder / "audio" / f.name, 16000) for f in FILES]
    assert [len(w) for w in waves][:2] == [4768, 9454] and len(waves[2]) == 32000
    return folder, waves


@pytest.fixture(scope="module")
def audio_checkpoint(tmp_path_factory):
    """A tiny BYOL-A v1 checkpoint (random weights, stored pre_norm statistics) trained on UNIT-second segments."""
    recipe = load_recipe(
        ROOT / "recipes" / "audio" / "byola_v1.yaml",
        [
            "data.dataset.root=data/demo/fsdd_mini",
            f"data.dataset.unit_sec={UNIT}",
            "model.encoder.feature_d=64",
            "model.projector.hidden_dim=32",
            "model.predictor.hidden_dim=32",
            "views.input.1.mean=-6.0",
            "views.input.1.std=4.5",
        ],
    )
    return write_random_checkpoint(recipe, tmp_path_factory.mktemp("run") / "checkpoints" / "last.pt", seed=3)


def eval_embeddings(folder, checkpoint, tmp_path, prenorm):
    """What ``ssl-toolkit eval`` embeds for the task's rows (its AudioEmbedder, cache off)."""
    tree = {
        "name": "t",
        "prenorm": prenorm,
        "linear": {"runs": 1},
        "plots": {"enabled": False},
        "tasks": [
            {
                "name": "clips",
                "kind": "audio_classification",
                "metadata": str(folder / "meta.csv"),
                "audio_dir": "audio",
                "unit_sec": UNIT,
            }
        ],
    }
    recipe = eval_recipe_from_dict(tree)
    data = load_task(recipe.parsed_tasks[0])
    model, _ = make_models(resolve_checkpoint(str(checkpoint)), recipe.model, want_random=False, prenorm=prenorm)
    embedder = AudioEmbedder(
        data,
        16000,
        EmbeddingCache(tmp_path / "cache", enabled=False),
        torch.device("cpu"),
        "fp32",
        4,
        prenorm,
        0,
        progress=False,
    )
    emb, info = embedder.embeddings(model, data.units[0])
    return emb, info, [p.name for p in data.files]


def embed_command(checkpoint, csv_path, out):
    assert main(["embed", str(checkpoint), str(csv_path), "--out", str(out), "--root", "audio", "--quiet"]) == 0
    z = np.load(out / "embeddings.npz")
    return z["embeddings"], list(z["files"])


def test_one_vector_per_file_through_api_embed_eval_and_hear(clips, audio_checkpoint, tmp_path):
    folder, waves = clips
    enc = sslt.load_encoder(audio_checkpoint)
    assert enc.unit_sec == pytest.approx(UNIT) and enc.prenorm == {"mean": -6.0, "std": 4.5}
    api = enc.embed([folder / "audio" / f.name for f in FILES])
    assert api.shape == (3, 64) and api.dtype == np.float32
    np.testing.assert_allclose(enc.embed(waves), api, rtol=RTOL, atol=ATOL)  # arrays = files
    (folder / "audio.csv").write_text("file_name\n" + "".join(f"audio/{f.name}\n" for f in FILES))
    np.testing.assert_allclose(enc.embed(folder / "audio.csv"), api, rtol=RTOL, atol=ATOL)  # a CSV = its rows
    cli, names = embed_command(audio_checkpoint, folder / "meta.csv", tmp_path / "embed")
    assert names == [f.name for f in FILES]
    np.testing.assert_allclose(cli, api, rtol=RTOL, atol=ATOL)
    ev, _, ev_names = eval_embeddings(folder, audio_checkpoint, tmp_path, "checkpoint")
    assert ev_names == names
    np.testing.assert_allclose(ev, api, rtol=RTOL, atol=ATOL)
    model = hear.load_model(str(audio_checkpoint))
    for i, wave in enumerate(waves):  # HEAR takes equal-length batches: one file at a time
        scene = hear.get_scene_embeddings(torch.from_numpy(wave)[None], model)
        np.testing.assert_allclose(scene.numpy()[0], api[i], rtol=RTOL, atol=ATOL)


def test_the_piece_rule_for_short_unit_and_long_clips(clips, audio_checkpoint):
    """Shorter than the unit: zero-padded to it (EVAR); one unit: itself; longer: the mean over unit pieces, the last
    piece ending with the clip."""
    _, waves = clips
    enc = sslt.load_encoder(audio_checkpoint)
    unit = 9454

    def clip_embedding(x):
        with torch.no_grad():
            return enc(torch.from_numpy(np.ascontiguousarray(x))[None]).numpy()[0]

    got = enc.embed(waves)
    np.testing.assert_allclose(
        got[0], clip_embedding(np.pad(waves[0], (0, unit - len(waves[0])))), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(got[1], clip_embedding(waves[1]), rtol=RTOL, atol=ATOL)
    starts = [0, unit, 2 * unit, 32000 - unit]
    want = np.mean([clip_embedding(waves[2][s : s + unit]) for s in starts], axis=0)
    np.testing.assert_allclose(got[2], want, rtol=RTOL, atol=ATOL)
    # the HEAR module used to embed a short clip as it is (not padded): the rule changes that vector
    unpadded = clip_embedding(np.pad(waves[0], (0, 16 * 160 - len(waves[0]))) if len(waves[0]) < 2560 else waves[0])
    assert not np.allclose(got[0], unpadded, rtol=1e-3)


def test_fit_prenorm_gives_eval_s_task_statistics_and_embeddings(clips, audio_checkpoint, tmp_path):
    """Default: the checkpoint's statistics; fit_prenorm(training clips) measures them as eval does per task."""
    folder, waves = clips
    ev, info, _ = eval_embeddings(folder, audio_checkpoint, tmp_path, "task")
    enc = sslt.load_encoder(audio_checkpoint)
    stats = enc.fit_prenorm(waves[:2])  # the task's training rows
    assert stats["mean"] == pytest.approx(info["prenorm"]["mean"], rel=1e-6)
    assert stats["std"] == pytest.approx(info["prenorm"]["std"], rel=1e-6)
    assert enc.prenorm == pytest.approx({"mean": stats["mean"], "std": stats["std"]})
    np.testing.assert_allclose(enc.embed(waves), ev, rtol=RTOL, atol=ATOL)
    assert enc.card.frontend_state[1]["mean"] == pytest.approx(stats["mean"])  # the card says what it holds now


def test_official_byola_weights_through_every_path(clips, tmp_path):
    """Official weights carry no statistics: the API asks for fit_prenorm, embed measures them on its input, eval on
    the task's training clips, HEAR standardizes each clip; with the same statistics all give one vector."""
    weights = SHARED / "fixtures" / "byola" / "audiontt2020_d512_random.pth"
    if not weights.is_file():
        pytest.skip(f"official fixture not found: {weights}")
    folder, waves = clips
    enc = sslt.load_encoder(weights)
    assert enc.source["kind"] == "official" and enc.feature_dim == 512 and enc.prenorm is None
    with pytest.raises(sslt.EvalError, match="fit_prenorm"):
        enc.embed(waves)
    enc.fit_prenorm(waves[:2], unit_sec=UNIT)
    api = enc.embed(waves, unit_sec=UNIT)
    ev, _, _ = eval_embeddings(folder, weights, tmp_path, "task")
    np.testing.assert_allclose(ev, api, rtol=RTOL, atol=ATOL)
    train_csv = folder / "train.csv"  # embed measures on its input: give it the training rows
    train_csv.write_text("file_name\n" + "\n".join(f.name for f in FILES[:2]) + "\n")
    assert (
        main(
            [
                "embed",
                str(weights),
                str(train_csv),
                "--out",
                str(tmp_path / "e"),
                "--root",
                "audio",
                "--unit-sec",
                str(UNIT),
                "--quiet",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(np.load(tmp_path / "e" / "embeddings.npz")["embeddings"], api[:2], rtol=RTOL, atol=ATOL)
    model = hear.hear_model(enc)  # the HEAR computation with the same statistics
    model.unit_sec = UNIT
    for i, wave in enumerate(waves):
        np.testing.assert_allclose(
            hear.get_scene_embeddings(torch.from_numpy(wave)[None], model).numpy()[0], api[i], rtol=RTOL, atol=ATOL
        )


def test_image_checkpoint_through_api_embed_and_eval(tmp_path):
    """Real CIFAR images at two sizes: API, ``ssl-toolkit embed`` and eval's image embedder give one vector."""
    from torchvision.io import write_png

    from ssl_toolkit.eval import image as image_eval

    data = SHARED / "data" / "cifar10" / "cifar10_subset_20k_5k.npz"
    if not data.is_file():
        pytest.skip(f"real data not found: {data}")
    with np.load(data) as z:
        x, y = z["x_test"][:8], z["y_test"][:8]
    folder = tmp_path / "images"
    for i, (img, label) in enumerate(zip(x, y)):
        t = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        if i % 2:
            t = torch.nn.functional.interpolate(t[None].float(), size=48, mode="nearest")[0].to(torch.uint8)
        sub = folder / ("test" if i >= 6 else "train") / f"class{int(label)}"
        sub.mkdir(parents=True, exist_ok=True)
        write_png(t, str(sub / f"{i}.png"))
    recipe = load_recipe(
        ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml",
        [
            "data.dataset.path=" + str(data),
            "model.encoder.width=0.125",
            "model.projector.hidden_dim=32",
            "model.predictor.hidden_dim=32",
        ],
    )
    ckpt = write_random_checkpoint(recipe, tmp_path / "run" / "checkpoints" / "last.pt", seed=1)
    enc = sslt.load_encoder(ckpt)
    assert enc.modality == "image" and enc.sample_rate is None and enc.unit_sec is None
    train = folder / "train"
    api = enc.embed(train)  # a folder: its images, sorted as list_files lists them, each at its own size
    files = [str(f) for f in enc.list_files(train)]
    assert len(files) == 6 and api.shape == (6, enc.feature_dim)
    assert main(["embed", str(ckpt), str(train), "--out", str(tmp_path / "e"), "--quiet"]) == 0
    z = np.load(tmp_path / "e" / "embeddings.npz")
    assert [str(train / n) for n in z["files"]] == files
    np.testing.assert_allclose(z["embeddings"], api, rtol=RTOL, atol=ATOL)
    # eval's image_folder takes one size: resize to 32 (the 48-pixel files are resized) in all three
    api32 = enc.embed(files, image_size=32)
    assert enc.embed(files, image_size=np.int64(32)).shape == api32.shape
    with pytest.raises(ValueError, match=r"image 0 is a \(3, 8, 8\) torch.float32 array; expected uint8 \(C, H, W\)"):
        enc.embed([np.zeros((3, 8, 8), np.float32)])
    for bad in (0, -1, 16.5, True):
        with pytest.raises(ValueError, match=f"image_size: expected a positive int \\(pixels\\), got {bad}"):
            enc.embed(files, image_size=bad)
    assert not np.allclose(api32, api, rtol=1e-3)
    assert main(["embed", str(ckpt), str(train), "--out", str(tmp_path / "e32"), "--image-size", "32", "--quiet"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "e32" / "embeddings.npz")["embeddings"], api32, rtol=RTOL, atol=ATOL)
    recipe = eval_recipe_from_dict(
        {
            "name": "t",
            "tasks": [
                {
                    "name": "imgs",
                    "kind": "image_classification",
                    "dataset": {"name": "image_folder", "path": str(folder), "size": 32},
                }
            ],
        }
    )
    model, _ = make_models(resolve_checkpoint(str(ckpt)), recipe.model, want_random=False, prenorm="checkpoint")
    split = image_eval.load_task(recipe.parsed_tasks[0]).splits["train"]
    ev, ok = image_eval.embed_split(model, split, torch.device("cpu"), "fp32", 4, 0, "t", False)
    order = [files.index(p) for p in split.dataset.paths]
    assert ok.all() and sorted(order) == list(range(6))
    np.testing.assert_allclose(ev, api32[order], rtol=RTOL, atol=ATOL)


def test_trainable_encoder_moves_every_parameter_and_not_the_front_end(audio_checkpoint):
    enc = sslt.load_encoder(audio_checkpoint, trainable=True)
    params = list(enc.backbone.parameters())
    assert params and all(p.requires_grad for p in params) and enc.backbone.training
    bns = [m for m in enc.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.training for m in bns)
    assert not enc.frontend.training and not any(p.requires_grad for p in enc.frontend.parameters())
    x = (torch.rand(4, 9454) - 0.5).requires_grad_(True)
    feats = enc.transforms()(x)
    assert not feats.requires_grad  # the front end is gradient-free
    enc(x).pow(2).mean().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)
    before = {k: v.clone() for k, v in enc.frontend.state_dict().items()}
    torch.optim.SGD(params, lr=0.1).step()
    assert all(torch.equal(before[k], v) for k, v in enc.frontend.state_dict().items())
    enc.train()
    assert not enc.frontend.training
    frozen_bn = sslt.load_encoder(audio_checkpoint, trainable=True, freeze_bn=True)
    assert frozen_bn.backbone.training and not any(
        m.training for m in frozen_bn.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )
    frozen = sslt.load_encoder(audio_checkpoint)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())


def test_embedding_a_model_in_train_mode_uses_eval_mode_and_restores_it(clips, audio_checkpoint):
    _, waves = clips
    enc = sslt.load_encoder(audio_checkpoint, trainable=True)
    got = enc.embed(waves[:2])
    assert enc.backbone.training
    np.testing.assert_allclose(got, sslt.load_encoder(audio_checkpoint).embed(waves[:2]), rtol=RTOL, atol=ATOL)


def test_frames_are_hear_s_timestamp_embeddings(clips, audio_checkpoint):
    _, waves = clips
    enc = sslt.load_encoder(audio_checkpoint)
    frames, ts = enc.embed_frames(waves[2])
    model = hear.load_model(str(audio_checkpoint))
    want, want_ts = hear.get_timestamp_embeddings(torch.from_numpy(waves[2])[None], model)
    torch.testing.assert_close(frames, want)
    torch.testing.assert_close(ts, want_ts)
    assert frames.shape[0] == 1 and frames.shape[2] == 64 and float(ts[0, 1] - ts[0, 0]) == 40.0
    with pytest.raises(ValueError, match="different lengths"):
        enc.embed_frames(waves[:2])


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda e: e.embed(["/nonexistent/x.wav"]), sslt.EvalError, "cannot read /nonexistent/x.wav: file not found"),
        (lambda e: e.embed([np.zeros(100, dtype=np.int16)]), TypeError, "clip 0 has int16 samples"),
        (lambda e: e.embed([np.full(100, 7.0, dtype=np.float32)]), ValueError, "clip 0 peaks at 7"),
        (lambda e: e.embed([np.zeros(100, np.float32)], precision="fp16"), ValueError, "precision: expected one of"),
        (lambda e: e.embed([np.zeros(100, np.float32)], batch_size=0), ValueError, "batch_size: expected a positive"),
        (lambda e: e.embed([np.zeros(100, np.float32)], long_clips="all"), ValueError, "long_clips: expected one of"),
        (lambda e: e.embed(3), TypeError, "expected paths, a folder, arrays"),
        (
            lambda e: e.embed([np.zeros(800, np.float32)], unit_sec=0),
            ValueError,
            "unit_sec: expected a positive number",
        ),
        (lambda e: e.embed([np.zeros(800, np.float32)], unit_sec=-1), ValueError, "unit_sec: expected a positive"),
        (lambda e: e.embed([np.zeros(800, np.float32)], unit_sec="1"), ValueError, "unit_sec: expected a positive"),
        (lambda e: e.embed([np.zeros(800, np.float32)], unit_sec=1e-6), sslt.EvalError, "a piece this short does"),
        (lambda e: e.fit_prenorm([np.zeros(800, np.float32)], unit_sec=0.0), ValueError, "fit_prenorm: unit_sec"),
        (lambda e: e.fit_prenorm([0.1 * np.ones(800, np.float32)], seed=-1), ValueError, "seed must be a non-negative"),
        (lambda e: e.embed(np.zeros((16000, 2), np.float32)), ValueError, r"read as 16000 clips of 2 samples.*x.mean"),
        (lambda e: e.embed([np.zeros(0, np.float32)]), ValueError, "clip 0 has no samples"),
        (lambda e: e.embed([ROOT / "recipes"]), sslt.EvalError, "is a folder inside a list; pass the folder itself"),
        (lambda e: e.embed_frames([]), ValueError, "embed_frames: no waves given"),
        (lambda e: e.embed_frames(np.zeros((100, 2), np.float32)), ValueError, "embed_frames: a \\(100, 2\\) array is"),
        (lambda e: e.fit_prenorm(np.zeros((100, 2), np.float32)), ValueError, "fit_prenorm: a \\(100, 2\\) array is"),
    ],
)
def test_bad_arguments_name_what_was_given_and_what_was_expected(audio_checkpoint, call, error, words):
    with pytest.raises(error, match=words):
        call(sslt.load_encoder(audio_checkpoint))


def test_a_folder_lists_no_hidden_files_or_folders(audio_checkpoint, clips, tmp_path):
    folder = tmp_path / "clips"
    wav = next(clips[0].rglob("*.wav"))
    for rel in ("a.wav", "sub/b.wav", ".hidden.wav", ".ipynb_checkpoints/c.wav", "sub/.git/d.wav"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, folder / rel)
    listed = sslt.load_encoder(audio_checkpoint).list_files(folder)
    assert [p.relative_to(folder).as_posix() for p in listed] == ["a.wav", "sub/b.wav"]


def test_numpy_integers_empty_input_and_a_given_unit(audio_checkpoint):
    enc = sslt.load_encoder(audio_checkpoint)
    wave = 0.1 * np.sin(np.arange(16000, dtype=np.float32) / 9)
    assert enc.embed([wave], batch_size=np.int64(4)).shape == (1, 64)
    assert enc.embed([]).shape == (0, 64) and enc.embed([]).dtype == np.float32
    np.testing.assert_array_equal(enc.embed([wave], unit_sec=np.float32(UNIT)), enc.embed([wave]))
    bare = sslt.load_encoder(audio_checkpoint)
    bare._prenorm_op().mean.fill_(float("nan"))  # no statistics: the unit check must not need them
    assert bare.fit_prenorm([wave], unit_sec=0.5)["n_pieces"] == 2


def test_wrong_modality_is_refused(tmp_path, tensor_recipe):
    recipe = load_recipe(tensor_recipe)
    enc = sslt.load_encoder(write_random_checkpoint(recipe, tmp_path / "r" / "checkpoints" / "last.pt"))
    for call, words in (
        (lambda: enc.embed([np.zeros(3)]), "takes vector input; embed reads audio and images"),
        (lambda: enc.embed_frames(np.zeros(3)), "embed_frames: needs an audio encoder"),
        (lambda: enc.fit_prenorm([np.zeros(3)]), "fit_prenorm: needs an audio encoder"),
        (lambda: enc.list_files(tmp_path), "list_files: encoder .* takes vector input"),
    ):
        with pytest.raises(sslt.EvalError, match=words):
            call()

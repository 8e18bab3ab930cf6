"""ssl-toolkit embed: one code path with eval and HEAR (same vectors), the output format and manifest, bad files,
bounded memory (decoded input is held one chunk at a time), and clear errors."""

import json
import weakref

import numpy as np
import pytest
import torch
from evalhelpers import ROOT, audio_recipe

import ssl_toolkit.embed as embed_module
import ssl_toolkit.hear as hear
from ssl_toolkit.audio.dataset import load_audio
from ssl_toolkit.checkpoint import sha256_file
from ssl_toolkit.cli import main
from ssl_toolkit.embed import EmbedSettings, run_embed
from ssl_toolkit.eval.audio_embedder import AudioEmbedder
from ssl_toolkit.eval.audio_tasks import load_task
from ssl_toolkit.eval.cache import EmbeddingCache
from ssl_toolkit.eval.checkpoints import resolve_checkpoint
from ssl_toolkit.eval.errors import EvalError
from ssl_toolkit.eval.models import make_models
from ssl_toolkit.eval.schema import eval_recipe_from_dict

QUIET = dict(progress=False)


def eval_embeddings(csv_path, checkpoint, tmp_path, precision="fp32"):
    """The embeddings ``ssl-toolkit eval`` computes for the task's clips (checkpoint statistics)."""
    tree = audio_recipe(csv_path, tmp_path)
    tree.pop("model")
    tree["prenorm"] = "checkpoint"
    recipe = eval_recipe_from_dict(tree)
    data = load_task(recipe.parsed_tasks[0])
    model, _ = make_models(resolve_checkpoint(str(checkpoint)), recipe.model, want_random=False, prenorm="checkpoint")
    embedder = AudioEmbedder(
        data,
        16000,
        EmbeddingCache(tmp_path / "cache", enabled=False),
        torch.device("cpu"),
        precision,
        8,
        "checkpoint",
        0,
        progress=False,
    )
    return embedder.embeddings(model, data.units[0])[0], [p.name for p in data.files]


def test_audio_scene_and_frames_equal_eval_and_hear(tone_csv, tiny_audio_checkpoint, tmp_path):
    """The tone clips are 0.5 s = unit_sec: one piece each, so eval's, HEAR's and embed's scene vectors are the same
    computation; embed's frames are HEAR's timestamp embeddings."""
    ckpt = tiny_audio_checkpoint()
    out = tmp_path / "out"
    manifest = run_embed(str(ckpt), tone_csv, out, EmbedSettings(unit_sec=0.5, frames=True, **QUIET), root="wav")
    z = np.load(out / "embeddings.npz")
    want, names = eval_embeddings(tone_csv, ckpt, tmp_path)
    assert list(z["files"]) == names and z["embeddings"].dtype == np.float32
    np.testing.assert_allclose(z["embeddings"], want, rtol=1e-5, atol=1e-6)
    model = hear.load_model(str(ckpt))
    model.unit_sec = 0.5  # the task's unit (HEAR's default is the training recipe's, 0.95 s)
    audio = torch.stack([torch.from_numpy(load_audio(tone_csv.parent / "wav" / n, 16000)) for n in names])
    np.testing.assert_allclose(z["embeddings"], hear.get_scene_embeddings(audio, model).numpy(), rtol=1e-5, atol=1e-6)
    frames, ts = hear.get_timestamp_embeddings(audio, model)
    off = z["frame_offsets"]
    assert off[0] == 0 and off[-1] == len(z["frames"]) == len(z["timestamps"]) and len(off) == len(names) + 1
    for i in (0, len(names) - 1):
        np.testing.assert_allclose(z["frames"][off[i] : off[i + 1]], frames[i].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(z["timestamps"][off[i] : off[i + 1]], ts[i].numpy())
    assert manifest["checkpoint_sha256"] == sha256_file(ckpt) and manifest["prenorm"]["source"] == "checkpoint"
    assert json.loads((out / "manifest.json").read_text())["encoder"]["name"] == "audiontt2020"
    assert manifest["n_files"] == len(names) and not (out / "skipped.csv").exists()
    assert not list(out.glob(".*tmp"))  # the frames spool is gone


def test_bf16_embeddings_equal_eval_bf16_and_stay_close_to_fp32(tone_csv, tiny_audio_checkpoint, tmp_path):
    ckpt = tiny_audio_checkpoint()
    run_embed(str(ckpt), tone_csv, tmp_path / "b", EmbedSettings(unit_sec=0.5, precision="bf16", **QUIET), root="wav")
    got = np.load(tmp_path / "b" / "embeddings.npz")["embeddings"]
    np.testing.assert_allclose(got, eval_embeddings(tone_csv, ckpt, tmp_path, "bf16")[0], rtol=1e-5, atol=1e-6)
    fp32 = eval_embeddings(tone_csv, ckpt, tmp_path)[0]
    assert np.abs(got - fp32).max() < 0.05 * np.abs(fp32).max()


def test_long_files_are_cut_into_unit_pieces_and_averaged(tone_csv, tiny_audio_checkpoint, tmp_path):
    ckpt = tiny_audio_checkpoint()
    run_embed(str(ckpt), tone_csv, tmp_path / "o", EmbedSettings(unit_sec=0.2, **QUIET), root="wav")
    got = np.load(tmp_path / "o" / "embeddings.npz")["embeddings"]
    model, _ = make_models(
        resolve_checkpoint(str(ckpt)),
        eval_recipe_from_dict({**audio_recipe(tone_csv, tmp_path), "model": {}}).model,
        want_random=False,
        prenorm="checkpoint",
    )
    wave = load_audio(tone_csv.parent / "wav" / "c0_0.wav", 16000)
    pieces = [wave[s : s + 3200] for s in (0, 3200, 4800)]  # 0.5 s in 0.2 s pieces: the last ends with the clip
    with torch.no_grad():
        x = torch.from_numpy(np.stack(pieces))
        for op in model.frontend:
            x = op(x, None)
        want = model.encoder(x).mean(0).numpy()
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)


def test_bad_files_are_skipped_and_listed_or_fail(tone_csv, tiny_audio_checkpoint, tmp_path):
    ckpt = tiny_audio_checkpoint()
    folder = tone_csv.parent / "wav"
    (folder / "broken.wav").write_bytes(b"RIFF not audio")
    (folder / "notes.txt").write_text("not audio, not listed")
    run_embed(str(ckpt), folder, tmp_path / "o", EmbedSettings(unit_sec=0.5, **QUIET))
    z = np.load(tmp_path / "o" / "embeddings.npz")
    assert "broken.wav" not in list(z["files"]) and len(z["files"]) == len(z["embeddings"]) == 24
    skipped = (tmp_path / "o" / "skipped.csv").read_text().splitlines()
    assert skipped[0] == "file,reason" and skipped[1].startswith("broken.wav,unreadable audio")
    with pytest.raises(EvalError, match=r"cannot use .*broken.wav: unreadable audio"):
        run_embed(str(ckpt), folder, tmp_path / "f", EmbedSettings(on_bad_file="fail", **QUIET))


def test_decoded_input_is_held_one_chunk_at_a_time(tiny_audio_checkpoint, tmp_path, monkeypatch):
    """Many tiny files, chunk 16: never more than one chunk of decoded clips alive (weak references count them),
    and the embeddings equal those of one big chunk."""
    import soundfile as sf

    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(200):
        sf.write(folder / f"{i:04d}.wav", (0.1 * rng.standard_normal(800)).astype(np.float32), 16000)
    alive, peak = [0], [0]

    def released():
        alive[0] -= 1

    def tracked(path, sample_rate):
        wave = load_audio(path, sample_rate)
        alive[0] += 1
        peak[0] = max(peak[0], alive[0])
        weakref.finalize(wave, released)
        return wave

    monkeypatch.setattr("ssl_toolkit.audio.dataset.load_audio", tracked)
    ckpt = tiny_audio_checkpoint()
    run_embed(str(ckpt), folder, tmp_path / "small", EmbedSettings(unit_sec=0.1, chunk=16, **QUIET))
    assert 1 <= peak[0] <= 16
    monkeypatch.undo()
    run_embed(str(ckpt), folder, tmp_path / "big", EmbedSettings(unit_sec=0.1, chunk=1000, **QUIET))
    with pytest.raises(EvalError, match=r"--unit-sec 0.02: a piece this short does not fit the encoder"):
        run_embed(str(ckpt), folder, tmp_path / "short", EmbedSettings(unit_sec=0.02, **QUIET))
    a, b = (np.load(tmp_path / n / "embeddings.npz") for n in ("small", "big"))
    assert list(a["files"]) == list(b["files"]) and len(a["files"]) == 200
    np.testing.assert_allclose(a["embeddings"], b["embeddings"], rtol=1e-5, atol=1e-6)


def test_official_weights_get_statistics_measured_on_the_input(tone_csv, tmp_path):
    official = ROOT.parent / "shared" / "fixtures" / "byola" / "audiontt2020_d512_random.pth"
    if not official.is_file():
        pytest.skip("official BYOL-A fixtures not found (../shared/fixtures/byola)")
    manifest = run_embed(str(official), tone_csv.parent / "wav", tmp_path / "o", EmbedSettings(**QUIET))
    stats = manifest["prenorm"]
    assert stats["source"] == "measured on the input" and stats["n_pieces"] == 24 and stats["std"] > 0
    assert manifest["feature_dim"] == 512 and manifest["unit_sec"] == 1.0
    assert np.load(tmp_path / "o" / "embeddings.npz")["embeddings"].shape == (24, 512)


def test_images_take_eval_s_front_end_and_are_batched_by_size(tmp_path):
    from PIL import Image

    from ssl_toolkit.eval.image import encode_batch
    from ssl_toolkit.eval.models import write_random_checkpoint
    from ssl_toolkit.image.decode import decode_image
    from ssl_toolkit.recipe import load_recipe

    recipe = load_recipe(
        ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml",
        ["model.encoder.width=0.125", "model.projector.hidden_dim=32", "model.predictor.hidden_dim=32"],
    )
    ckpt = write_random_checkpoint(recipe, tmp_path / "run" / "checkpoints" / "last.pt")
    folder = tmp_path / "img" / "sub"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, size in enumerate([(32, 32), (40, 24), (32, 32)]):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    run_embed(str(ckpt), tmp_path / "img", tmp_path / "o", EmbedSettings(**QUIET))
    z = np.load(tmp_path / "o" / "embeddings.npz")
    assert list(z["files"]) == ["sub/0.png", "sub/1.png", "sub/2.png"]
    model, _ = make_models(
        resolve_checkpoint(str(ckpt)),
        eval_recipe_from_dict(
            {
                "name": "x",
                "tasks": [
                    {
                        "name": "c",
                        "kind": "image_classification",
                        "dataset": {"name": "image_folder", "path": str(tmp_path)},
                    }
                ],
            }
        ).model,
        want_random=False,
    )
    for i in range(3):
        want = encode_batch(
            model.frontend, model.encoder, decode_image(folder / f"{i}.png", None)[None], torch.device("cpu"), "fp32"
        )
        np.testing.assert_allclose(z["embeddings"][i], want[0], rtol=1e-5, atol=1e-6)
    run_embed(str(ckpt), tmp_path / "img", tmp_path / "s", EmbedSettings(image_size=16, **QUIET))
    assert np.load(tmp_path / "s" / "embeddings.npz")["embeddings"].shape == (3, model.feature_dim)
    with pytest.raises(EvalError, match="--frames gives timestamp embeddings of audio"):
        run_embed(str(ckpt), tmp_path / "img", tmp_path / "f", EmbedSettings(frames=True, **QUIET))


def test_errors_name_what_is_wrong(tone_csv, tiny_audio_checkpoint, tmp_path, tensor_recipe, capsys):
    ckpt = tiny_audio_checkpoint()
    run_embed(str(ckpt), tone_csv, tmp_path / "o", EmbedSettings(unit_sec=0.5, **QUIET), root="wav")
    with pytest.raises(EvalError, match=r"already holds embeddings \(embeddings.npz, manifest.json\).*--overwrite"):
        run_embed(str(ckpt), tone_csv, tmp_path / "o", EmbedSettings(**QUIET), root="wav")
    run_embed(str(ckpt), tone_csv, tmp_path / "o", EmbedSettings(unit_sec=0.5, **QUIET), root="wav", overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EvalError, match=r"no audio files \(.wav, .flac"):
        run_embed(str(ckpt), empty, tmp_path / "e", EmbedSettings(**QUIET))
    with pytest.raises(EvalError, match=r"INPUT .*nothing.txt: no such file or directory"):
        run_embed(str(ckpt), tmp_path / "nothing.txt", tmp_path / "e", EmbedSettings(**QUIET))
    with pytest.raises(EvalError, match=r"none of the 24 files could be read"):
        run_embed(str(ckpt), tone_csv, tmp_path / "e", EmbedSettings(**QUIET))  # file names resolve to nothing
    from ssl_toolkit.eval.models import write_random_checkpoint
    from ssl_toolkit.recipe import load_recipe

    vector = write_random_checkpoint(load_recipe(tensor_recipe), tmp_path / "vec.pt")
    with pytest.raises(EvalError, match=r"encoder 'mlp_encoder' takes vector input; embed reads audio and image"):
        run_embed(str(vector), empty, tmp_path / "v", EmbedSettings(**QUIET))
    assert main(["embed", str(ckpt), str(empty), "--out", str(tmp_path / "c"), "--quiet"]) == 1
    assert "no audio files" in capsys.readouterr().err
    assert (
        main(
            [
                "embed",
                "random",
                str(tone_csv),
                "--root",
                "wav",
                "--out",
                str(tmp_path / "r"),
                "--encoder",
                "{name: audiontt2020, feature_d: 32}",
                "--unit-sec",
                "0.5",
            ]
        )
        == 0
    )
    assert "24 files" in capsys.readouterr().out
    assert np.load(tmp_path / "r" / "embeddings.npz")["embeddings"].shape == (24, 32)
    assert main(["embed", "random", str(tone_csv), "--out", str(tmp_path / "x"), "--encoder", "[1, 2]"]) == 1
    assert "--encoder: expected a YAML dict" in capsys.readouterr().err
    assert main(["embed", "random", str(tone_csv), "--out", str(tmp_path / "y"), "--frontend", "[log_mel]"]) == 1
    assert "--frontend: expected a YAML list of op mappings" in capsys.readouterr().err
    out = str(tmp_path / "z")
    assert (
        main(["embed", str(ckpt), str(tone_csv), "--root", "wav", "--out", out, "--encoder", "{feature_d: 999}"]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert "carry their architecture, and encoder feature_d=999" in err and "--encoder / --frontend are for" in err
    assert len(err.splitlines()) == 1
    recipe = str(ROOT / "recipes" / "audio" / "byola_fsdd.yaml")
    assert main(["embed", recipe, str(tone_csv), "--root", "wav", "--out", out]) == 1
    assert "byola_fsdd.yaml: a recipe, not weights" in capsys.readouterr().err


def test_the_streaming_write_spools_frames_to_disk(tone_csv, tiny_audio_checkpoint, tmp_path, monkeypatch):
    """Frames go to a spool file chunk by chunk and into the .npz from a memory map (not kept in memory)."""
    seen = []
    real = np.memmap

    def spy(*a, **k):
        seen.append(a[0])
        return real(*a, **k)

    monkeypatch.setattr(embed_module.np, "memmap", spy)
    run_embed(
        str(tiny_audio_checkpoint()), tone_csv, tmp_path / "o", EmbedSettings(frames=True, chunk=5, **QUIET), root="wav"
    )
    assert len(seen) == 1 and str(seen[0]).endswith(".frames.f32.tmp") and not seen[0].exists()


def test_measured_statistics_draw_files_at_random_not_in_path_order(tiny_audio_checkpoint, tmp_path, monkeypatch):
    """With more pieces than the cap, the first folders (often the first classes) must not fill it alone."""
    import soundfile as sf

    from ssl_toolkit import load_encoder
    from ssl_toolkit.input_files import list_inputs

    rng = np.random.default_rng(0)
    for folder, gain in (("a_loud", 0.5), ("b_quiet", 0.005)):
        (tmp_path / "in" / folder).mkdir(parents=True)
        for i in range(20):
            sf.write(tmp_path / "in" / folder / f"{i:02d}.wav", gain * rng.standard_normal(1600), 16000)
    monkeypatch.setattr("ssl_toolkit.eval.audio_embedder.MAX_STATS_PIECES", 10)  # 10 of the 40 one-piece files
    enc = load_encoder(str(tiny_audio_checkpoint()))
    settings = EmbedSettings(unit_sec=0.1, **QUIET)

    def mean_of(folder):
        return embed_module._measure_prenorm(enc, list_inputs(folder, "audio"), settings, 0.1)["mean"]

    loud, quiet, both = (
        mean_of(tmp_path / "in" / "a_loud"),
        mean_of(tmp_path / "in" / "b_quiet"),
        mean_of(tmp_path / "in"),
    )
    assert quiet + 0.2 * (loud - quiet) < both < loud - 0.2 * (loud - quiet), (loud, quiet, both)

"""Tutorial: use a pretrained encoder the way a notebook would — load it, embed a folder of clips, fit a scikit-learn
classifier on some speakers, test it on others, and draw a 2-D map of the embeddings.

    python docs/tutorials/embed_and_classify.py                       # make demo's run, the EmoDB clips it ships
    python docs/tutorials/embed_and_classify.py --run RUN --out DIR   # any run dir / checkpoint / exported folder

EmoDB file names say who speaks and which emotion: ``03a01Fa.flac`` is speaker 03, text a01, emotion F (Freude,
happiness), version a. Speakers 15 and 16 are held out: the classifier never sees them, and neither did ``make
demo``'s encoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import ssl_toolkit as sslt

EMOTIONS = {"W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness", "T": "sadness", "N": "neutral"}


def main(run: str, clips: str, out: str, limit: int | None = None) -> float:
    # 1. Load the encoder: a run directory, a checkpoint, an encoder file or an exported folder.
    enc = sslt.load_encoder(run)
    print(f"{enc.modality} encoder, {enc.feature_dim}-d embeddings, {enc.unit_sec} s pieces at {enc.sample_rate} Hz")

    # 2. Embed every clip of the folder: one vector per file (the mean over unit_sec pieces).
    files = sorted(Path(clips).glob("*.flac"))
    if limit:  # an evenly spaced sample, so that every speaker stays in it
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    x = enc.embed(files)
    emotion = np.array([EMOTIONS[f.name[5]] for f in files])
    unseen = np.array([f.name[:2] in ("15", "16") for f in files])
    print(f"embedded {len(files)} clips: {x.shape}; {unseen.sum()} of them by the 2 held-out speakers")

    # 3. A linear classifier on the other speakers (standardized with their statistics), tested on the held-out ones.
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    clf.fit(x[~unseen], emotion[~unseen])
    accuracy = clf.score(x[unseen], emotion[unseen])
    print(f"emotion of unseen speakers: {accuracy:.1%} (chance {1 / len(set(emotion)):.1%})")

    # 4. A map: the first two principal components of the standardized embeddings, coloured by emotion.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xy = PCA(n_components=2, random_state=0).fit_transform(StandardScaler().fit_transform(x))
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for i, name in enumerate(sorted(set(emotion))):
        m = emotion == name
        ax.scatter(xy[m & ~unseen, 0], xy[m & ~unseen, 1], s=10, color=f"C{i}", alpha=0.5, label=name)
        ax.scatter(xy[m & unseen, 0], xy[m & unseen, 1], s=22, color=f"C{i}", marker="x")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"EmoDB embeddings, PCA (×: held-out speakers); unseen-speaker accuracy {accuracy:.0%}", fontsize=9)
    ax.legend(fontsize=7, markerscale=1.5, frameon=False)
    fig.tight_layout()
    path = Path(out) / "embed_and_classify.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"map: {path}")
    return accuracy


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/demo", help="run dir, checkpoint, encoder file or exported folder")
    ap.add_argument("--clips", default="data/demo/emodb/wav", help="a folder of EmoDB .flac clips")
    ap.add_argument("--out", default="runs/tutorial", help="where the map PNG goes")
    ap.add_argument("--limit", type=int, default=None, help="embed N evenly spaced clips (a quick try)")
    args = ap.parse_args()
    main(args.run, args.clips, args.out, args.limit)

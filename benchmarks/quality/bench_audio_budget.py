"""BYOL-A on a CPU budget: which levers make 8 minutes of 2-core pretraining on unlabeled speech beat the baselines.

Each lever is ``recipes/audio/byola_v1_cpu_8min.yaml`` plus overrides (the recipe's own wall-clock cap,
``trainer.max_minutes``, bounds every run), pretrained with the ordinary trainer and evaluated with the EVAR linear
probe (3 probe seeds) on EmoDB (emotion, speaker independent) and the two FSDD tasks (digits speaker independent,
speaker ID by take), with the random-init and log-mel rows of the same eval beside it.

    python benchmarks/quality/bench_audio_budget.py --levers reference emodb_too --seeds 0
    python benchmarks/quality/bench_audio_budget.py --levers v2 --seeds 0 1 2           # byola_cpu_8min.yaml, 3 seeds
    python benchmarks/quality/bench_audio_budget.py --table                              # only rewrite the table

Every finished run appends one JSON line to ``benchmarks/results/audio_budget.jsonl`` (accuracies as fractions);
a rerun skips what is logged and resumes an unfinished run from its last checkpoint (a resumed run's wall-clock cap
restarts, so it may train longer than one sitting would). ``--table`` writes ``audio_budget.md``: one row per lever,
mean ± std over the seeds run; ``validity_audio.jsonl`` gets the v1 / v2 / TriBYOL runs (issue 17).
Needs ../shared/data/fsdd and ../shared/data/emodb.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from harness import train_or_reuse  # noqa: E402
from jsonl_log import append_jsonl, read_jsonl  # noqa: E402

RECIPE = "recipes/audio/byola_v1_cpu_8min.yaml"  # the levers change BYOL-A v1 at the budget
RESULTS = ROOT / "benchmarks" / "results" / "audio_budget.jsonl"
VALIDITY = ROOT / "benchmarks" / "results" / "validity_audio.jsonl"  # issue 17's audio claims, from these runs
VALIDITY_CONFIGS = {"reference": "byola_v1", "v2": "byola_v2", "tribyol": "tribyol"}
STEPS_PER_EPOCH = 2000 // 64  # FSDD's training clips at the recipe's batch
EVALS = ("recipes/eval/emodb.yaml", "recipes/eval/fsdd.yaml")
TASKS = ("emodb", "fsdd_digits", "fsdd_speaker")
FSDD = ROOT.parent / "shared" / "data" / "fsdd"
EMODB = ROOT.parent / "shared" / "data" / "emodb"


def _part(root: str, audio_dir: str) -> str:
    return (
        f"{{name: audio_folder, root: {root}, metadata: metadata.csv, audio_dir: {audio_dir}, split: train, "
        "sample_rate: 16000, unit_sec: 0.95}"
    )


FSDD_AND_EMODB = (
    "data.dataset={name: concat, datasets: ["
    + _part("../shared/data/fsdd", "recordings")
    + ", "
    + _part("../shared/data/emodb", "wav")
    + "]}"
)
MONITORS = (
    "trainer.hooks=[{name: rankme, every: 100, pool: 512}, {name: probe, recipe: recipes/eval/emodb.yaml, "
    "every_epochs: 4}, {name: probe, recipe: recipes/eval/fsdd.yaml, task: fsdd_digits, max_train: 500, "
    "max_test: 300, every_epochs: 4}]"
)

V1 = "[{name: mixup, ratio: 0.4, n_memory: 2048}, {name: random_resize_crop}]"  # BYOL-A v1's view
V2 = "[{name: mixup, ratio: 0.2, n_memory: 2048}, {name: random_resize_crop}, {name: random_linear_fader, gain: 1.0}]"

# label: (what it changes, overrides of RECIPE)
LEVERS: dict[str, tuple[str, list[str]]] = {
    "reference": (
        "byola_v1_cpu_8min.yaml as is (the issue's first data point): FSDD train only, d=512, batch 64, "
        "lr 3e-4, τ 0.99",
        [],
    ),
    "emodb_too": ("+ EmoDB's 304 training clips (unlabeled) beside FSDD's 2,000", [FSDD_AND_EMODB, MONITORS]),
    "lr_1e-3": (
        "emodb_too + Adam lr 1e-3 (from 3e-4): a short run takes bigger steps",
        [FSDD_AND_EMODB, MONITORS, "optimizer.lr=0.001"],
    ),
    "freq_strong": (
        "emodb_too + stronger frequency stretch in random_resize_crop (freq_scale 0.5-2.0, from 0.6-1.5): "
        "views differ more in pitch/formants, i.e. in speaker",
        [
            FSDD_AND_EMODB,
            MONITORS,
            "views.branches.0.1.freq_scale=[0.5, 2.0]",
            "views.branches.1.1.freq_scale=[0.5, 2.0]",
        ],
    ),
    "d2048": (
        "emodb_too + AudioNTT2020 d=2048 (the paper's; from 512): bigger, fewer steps in the budget",
        [FSDD_AND_EMODB, MONITORS, "model.encoder.feature_d=2048"],
    ),
    "freq_strong_ref": (
        "reference + the stronger frequency stretch of freq_strong (FSDD only, no EmoDB)",
        ["views.branches.0.1.freq_scale=[0.5, 2.0]", "views.branches.1.1.freq_scale=[0.5, 2.0]"],
    ),
    "v2": (
        "reference as BYOL-A v2 (TASLP 2023): nnAudio log-mel, mixup 0.2, random linear fader, AudioNTT2022 "
        "d=3072 (MLP hidden 2048), lr 1e-4",
        [
            "views.input.0.frontend=nnaudio_mel",
            f"views.branches=[{V2}, {V2}]",
            "model.encoder={name: audiontt2022, n_mels: 64, feature_d: 3072, mlp_hidden_d: 2048}",
            "optimizer.lr=0.0001",
        ],
    ),
    "ntt2022_only": (
        "reference with v2's encoder only (AudioNTT2022 d=3072, MLP hidden 2048); v1's front end, views and lr",
        ["model.encoder={name: audiontt2022, n_mels: 64, feature_d: 3072, mlp_hidden_d: 2048}"],
    ),
    "tribyol": (
        "reference as TriBYOL (Li et al., ICASSP 2022): 3 views, 2 EMA targets updated alternately",
        ["method={name: tribyol, target_update: alternate}", f"views.branches=[{V1}, {V1}, {V1}]"],
    ),
}
# BYOL-A's ablation (issue 34): byola_cpu_8min.yaml (the v2 lever) at equal steps — the 320 that v2 reaches in its
# 8 minutes here (310-330 on 3 seeds) — without the wall-clock cap, one component taken away at a time
ABLATION_STEPS = ["trainer.max_minutes=null", "trainer.max_steps=320"]
V2_OPS = {
    "mixup": "{name: mixup, ratio: 0.2, n_memory: 2048}",
    "rrc": "{name: random_resize_crop}",
    "fader": "{name: random_linear_fader, gain: 1.0}",
}


def _v2_without(*ops: str) -> list[str]:
    view = "[" + ", ".join(v for k, v in V2_OPS.items() if k not in ops) + "]"
    return [o for o in LEVERS["v2"][1] if not o.startswith("views.branches=")] + [f"views.branches=[{view}, {view}]"]


LEVERS.update(
    {
        "abl_full": (
            "v2 (byola_cpu_8min.yaml) at 320 steps: mixup + random resize crop + random linear fader, pre- and "
            "post-norm",
            [*LEVERS["v2"][1], *ABLATION_STEPS],
        ),
        "abl_no_mixup": (
            "abl_full without mixup (random resize crop + fader)",
            [*_v2_without("mixup"), *ABLATION_STEPS],
        ),
        "abl_no_rrc": ("abl_full without random resize crop (mixup + fader)", [*_v2_without("rrc"), *ABLATION_STEPS]),
        "abl_no_fader": (
            "abl_full without the random linear fader (mixup + RRC, at v2's settings)",
            [*_v2_without("fader"), *ABLATION_STEPS],
        ),
        "abl_no_prenorm": (
            "abl_full without pre-normalization (log-mel straight to the views)",
            [
                *LEVERS["v2"][1],
                "views.input=[{name: log_mel, frontend: nnaudio_mel, sample_rate: 16000, "
                "n_fft: 1024, win_length: 1024, hop_length: 160, n_mels: 64, f_min: 60, f_max: 7800}]",
                *ABLATION_STEPS,
            ],
        ),
        "abl_no_postnorm": (
            "abl_full without post-normalization (no batch normalization of the views)",
            [*LEVERS["v2"][1], "views.joint=[]", *ABLATION_STEPS],
        ),
    }
)
VALIDITY_CONFIGS.update({k: f"byola_v2_320 {k.removeprefix('abl_')}" for k in LEVERS if k.startswith("abl_")})


def _metrics(run_dir: Path) -> dict:
    from ssl_toolkit.training.metrics import read_metrics

    rows = read_metrics(run_dir)
    last = rows[-1]
    rankme = [float(r["rankme"]) for r in rows if r.get("rankme") not in (None, "")]
    return {
        "steps": int(last["step"]),
        "train_s": round(float(last["elapsed_s"]), 1),
        "final_loss": float(last["loss"]),
        "final_collapse": float(last["collapse"]),
        "rankme": rankme[-1] if rankme else None,
        "samples_per_s": round(float(last["samples_per_s"]), 1),
    }


def _eval(run_dir: Path) -> dict:
    """{system: {task: [3 probe-seed scores]}} for the model, random init and log-mel."""
    from ssl_toolkit.eval.runner import run_eval
    from ssl_toolkit.eval.schema import load_eval_recipe

    scores: dict = {}
    for path in EVALS:
        recipe = load_eval_recipe(ROOT / path, ["plots.enabled=false", "device=cpu"])
        res = run_eval(recipe, str(run_dir), out_dir=run_dir / "eval" / Path(path).stem, quiet=True)
        systems = {"model": res["tasks"], **{k: v["tasks"] for k, v in res["baselines"].items()}}
        for system, tasks in systems.items():
            for task, entry in tasks.items():
                scores.setdefault(system, {})[task] = entry["runs"]
    return scores


def run_one(label: str, seed: int, out: Path) -> dict:
    from ssl_toolkit.recipe import load_recipe

    what, overrides = LEVERS[label]
    run_dir = out / f"{label}-s{seed}"
    train_ov = ["trainer.progress=false", "trainer.tensorboard=false", f"seed={seed}", *overrides]
    t0 = time.perf_counter()
    recipe = load_recipe(ROOT / RECIPE, train_ov)
    train_or_reuse(recipe, run_dir)
    row = {
        "lever": label,
        "what": what,
        "seed": seed,
        "recipe": RECIPE,
        "overrides": overrides,
        "feature_d": recipe.model.encoder.params["feature_d"],
        **_metrics(run_dir),
    }
    row["scores"] = _eval(run_dir)
    row.update(
        {
            "units": "fraction",
            "wall_s": round(time.perf_counter() - t0, 1),
            "host": platform.node(),
            "finished": datetime.now().isoformat(timespec="seconds"),
        }
    )
    return row


def _ms(values: list[float]) -> str:
    import numpy as np

    v = 100 * np.asarray(values, dtype=float)
    return f"{v.mean():.1f} ± {v.std(ddof=1):.1f}" if len(v) > 1 else f"{v.mean():.1f}"


def table(rows: list[dict]) -> str:
    """Markdown: per lever, mean ± std over pretraining seeds of each task's mean over probe seeds; the random
    and log-mel rows come from the same evals (mean over probe seeds, then over the evals)."""
    import numpy as np

    lines = [
        "# BYOL-A on a CPU budget (benchmarks/quality/bench_audio_budget.py)",
        "",
        f"Recipe `{RECIPE}` + each lever's overrides; EVAR linear probe, mean of 3 probe seeds per pretraining",
        "seed, then mean ± std over pretraining seeds (n). Accuracies in %.",
        "",
        "| lever | what it changes | n | steps | " + " | ".join(TASKS) + " | RankMe |",
        "|---|---|---:|---:|" + "---:|" * len(TASKS) + "---:|",
    ]
    by_lever: dict[str, list[dict]] = {}
    for r in rows:
        by_lever.setdefault(r["lever"], []).append(r)
    base: dict = {}
    for lever, rs in by_lever.items():
        cells = [_ms([np.mean(r["scores"]["model"][t]) for r in rs]) for t in TASKS]
        steps = int(np.mean([r["steps"] for r in rs]))
        rk = np.mean([r["rankme"] for r in rs if r["rankme"] is not None] or [float("nan")])
        what = LEVERS[lever][0] if lever in LEVERS else rs[0]["what"]
        lines.append(f"| {lever} | {what} | {len(rs)} | {steps} | " + " | ".join(cells) + f" | {rk:.0f} |")
        for r in rs:
            for system in ("random", "logmel"):
                for t in TASKS:
                    if t in r["scores"].get(system, {}):
                        key = (system, _baseline(r["overrides"], system), t)
                        base.setdefault(key, []).append(np.mean(r["scores"][system][t]))
    for system, what in sorted({(s, w) for s, w, _ in base}):
        cells = [_ms(base[(system, what, t)]) if (system, what, t) in base else "–" for t in TASKS]
        lines.append(
            f"| *{system}* | {what}; the levers' evals pooled | {len(base[(system, what, TASKS[0])])} | | "
            + " | ".join(cells)
            + " | |"
        )
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def _recipe(overrides: tuple):
    from ssl_toolkit.recipe import load_recipe

    return load_recipe(ROOT / RECIPE, list(overrides))


def _baseline(overrides: list[str], system: str) -> str:
    """What a baseline row of a lever's eval is: the random encoder, or the log-mel of the run's front end."""
    recipe = _recipe(tuple(overrides))
    if system == "random":
        enc = recipe.model.encoder
        return f"random {enc.name} d={enc.params['feature_d']}"
    frontend = next(op.params.get("frontend") for op in recipe.views.input if op.name == "log_mel")
    return f"log-mel ({frontend}) time mean+max, no learning"


def validity_rows(rows: list[dict]) -> list[dict]:
    """The BYOL-A v1 / v2 / TriBYOL runs as the rows of ``validity_audio.jsonl`` (``linear``: per task, the mean
    over 3 probe seeds, fractions; the EVAR protocol has no kNN, so ``knn`` is null)."""
    import numpy as np

    out = []
    for r in rows:
        if r["lever"] in VALIDITY_CONFIGS:
            out.append(
                {
                    "config": VALIDITY_CONFIGS[r["lever"]],
                    "seed": r["seed"],
                    "lever": r["lever"],
                    "epochs": round(r["steps"] / STEPS_PER_EPOCH, 1),
                    "steps": r["steps"],
                    "train_s": r["train_s"],
                    "final_loss": r["final_loss"],
                    "final_collapse": r["final_collapse"],
                    "rankme": r["rankme"],
                    "linear": {t: float(np.mean(v)) for t, v in r["scores"]["model"].items()},
                    "knn": None,
                    "units": "fraction",
                    "recipe": r["recipe"],
                    "overrides": r["overrides"],
                }
            )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levers", nargs="*", default=[], choices=sorted(LEVERS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "audio_budget")
    ap.add_argument("--table", action="store_true", help="only rewrite benchmarks/results/audio_budget.md")
    args = ap.parse_args(argv)
    if not args.table and not (FSDD.is_dir() and EMODB.is_dir()):
        raise SystemExit(f"needs {FSDD} and {EMODB}")
    import torch

    torch.set_num_threads(2)
    done = {(r["lever"], r["seed"]): r["overrides"] for r in read_jsonl(RESULTS)}
    for label in [] if args.table else args.levers:
        for seed in dict.fromkeys(args.seeds):
            if (label, seed) in done:
                if done[label, seed] != LEVERS[label][1]:
                    raise SystemExit(
                        f"{RESULTS}: {label} seed {seed} was logged with overrides {done[label, seed]}, the lever "
                        f"now has {LEVERS[label][1]}; move that line to a superseded file to run it again"
                    )
                print(f"{label} seed {seed}: logged, skipped")
                continue
            row = run_one(label, seed, args.out)
            append_jsonl(RESULTS, [row])
            done[label, seed] = row["overrides"]
            m = row["scores"]["model"]
            print(
                f"{label} seed {seed}: {row['steps']} steps, "
                + ", ".join(f"{t} {100 * sum(m[t]) / len(m[t]):.1f}" for t in TASKS),
                flush=True,
            )
    rows = read_jsonl(RESULTS)
    (RESULTS.with_suffix(".md")).write_text(table(rows))
    VALIDITY.write_text("".join(json.dumps(r) + "\n" for r in validity_rows(rows)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The claims ``validity_verdicts.py`` judges (issues 17 and 34): per claim its source (paper, table, numbers), its
kind (which verdict rule applies) and the run keys of the two sides in the results files.

A run key is a results row's key without its seed: for images the recipe stem and its overrides
(``bench_variants.py``, whose override groups ``NO_COLOUR`` / ``CROP_ONLY`` are defined here), for audio the config
name ``bench_audio_budget.py`` logs, for fine-tuning ``bench_finetune.py``'s task/method key.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("better", "comparable", "collapses", "smaller drop", "worse, no collapse", "plateau")
"""The verdict rules (validity_verdicts.py's docstring)."""


@dataclass(frozen=True)
class Claim:
    name: str
    source: str
    kind: str  # one of KINDS
    file: str  # IMG | AUD | FT: the results file its runs are in
    a: str  # run key without the seed (image: recipe stem + overrides; audio: config)
    b: str = ""
    metric: str = "linear"
    caveat: str = ""  # why our runs may not test the paper's method; shown with every verdict but pending
    a_full: str = ""  # smaller drop: the full recipes whose ablations a and b are
    b_full: str = ""
    drop_word: str = "drop"  # smaller drop: what full − ablated is ("gain" where the ablated run is scratch)
    members: tuple = ()  # plateau: the runs that must agree (a names the first) ...
    outsiders: tuple = ()  # ... and the runs every member must beat

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if (self.kind == "plateau") != bool(self.members and self.outsiders):
            raise ValueError(f"claim {self.name!r}: members and outsiders are for (and needed by) a plateau claim")
        if (self.kind == "smaller drop") != bool(self.a_full and self.b_full):
            raise ValueError(f"claim {self.name!r}: a_full and b_full are for (and needed by) a smaller drop claim")


def image_key(variant: str, *overrides: str) -> str:
    """The run key of ``recipes/.../<variant>_cifar10_cpu.yaml`` with these overrides (``bench_variants.py``'s)."""
    return " ".join([f"{variant}_cifar10_cpu", *overrides])


IMG, AUD, FT = "validity_image.jsonl", "validity_audio.jsonl", "finetune_claims.jsonl"
# bench_variants.py's override groups on the CIFAR views (ops 1 flip, 2 colour jitter, 3 grayscale, 4 solarize)
NO_COLOUR = tuple(f"views.branches.{b}.{op}.p=0.0" for b in (0, 1) for op in (2, 3))
CROP_ONLY = (*NO_COLOUR, *(f"views.branches.{b}.{op}.p=0.0" for b in (0, 1) for op in (1, 4)))
SMALL_BATCH = ("data.batch_size=32", "trainer.grad_accum_steps=4")
TAU_0_CONSTANT = ("ema.tau_base=0.0", "ema.schedule=constant")  # BYOL Table 5a †: τ = τ_base = 0 all along
GRILL = "Grill et al. 2020, BYOL (NeurIPS, arXiv 2006.07733)"
NIIZUMI = "Niizumi et al. 2021, BYOL-A (IJCNN, arXiv 2103.06695)"
ABL = "byola_v2_320 {}"  # bench_audio_budget.py's abl_* levers: v2 at 320 steps, one component taken away
LINEAR_PREDICTOR = "model.predictor.num_layers=1"  # BYOL with a trained linear predictor (Edge of Orthogonality)
STIEFEL_CAVEAT = (
    "the paper's Stiefel formula on L2-normalized projections with ridge α = 0.01, where it is ≈ the "
    "identity predictor α·I: not the paper's setting, which the next claim tests"
)
EOO_BEST = {"ne": "68.5 / 71.8 % (α 0.15)", "ns2": "68.8 / 72.2 % (α 0.9 / 0.6)", "stiefel": "68.8 / 72.1 % (α 0.3)"}


def byol_loses_less_than_simclr(what: str, source: str, overrides: tuple, caveat: str = "") -> Claim:
    """BYOL's robustness claims (Fig. 3): the drop full − ``overrides`` is smaller for BYOL than for SimCLR."""
    return Claim(
        f"BYOL loses less than SimCLR {what}",
        source,
        "smaller drop",
        IMG,
        image_key("byol", *overrides),
        image_key("simclr", *overrides),
        a_full=image_key("byol"),
        b_full=image_key("simclr"),
        caveat=caveat,
    )


CLAIMS = [
    Claim(
        "TriBYOL beats BYOL at a small batch (64)",
        "Li et al. 2022, TriBYOL (arXiv 2206.03012), abstract: it 'can drastically outperform state-of-the-art "
        "self-supervised learning methods on several datasets in small-batch cases'",
        "better",
        IMG,
        image_key("tribyol", "data.batch_size=64"),
        image_key("byol", "data.batch_size=64"),
    ),
    Claim(
        "closed-form predictor directpred matches the trained MLP predictor",
        "Tian et al. 2021, DirectPred (ICML, arXiv 2102.06810), abstract: 'performs comparably with more complex "
        "two-layer non-linear predictors that employ BatchNorm' (ImageNet, 300 epochs)",
        "comparable",
        IMG,
        image_key("directpred"),
        image_key("byol"),
    ),
    *[
        Claim(
            f"closed-form predictor {p} beats the trained linear predictor",
            "Richemond et al. 2023, Edge of Orthogonality (ICML, arXiv 2302.04817), abstract: the closed-form "
            "predictors 'outperform standard linear trainable predictor BYOL at 100 and 300 epochs' (ImageNet; "
            f"its ridge table, best α: {EOO_BEST[p]} vs the linear predictor's 67.6 / 71.5 % top-1)",
            "better",
            IMG,
            image_key(p),
            image_key("byol", LINEAR_PREDICTOR),
            caveat=STIEFEL_CAVEAT if p == "stiefel" else "",
        )
        for p in ("ne", "ns2", "stiefel")
    ],
    Claim(
        "closed-form predictor stiefel in the paper's setting (raw latents, ridge α 0.3) beats the trained "
        "linear predictor",
        "Richemond et al. 2023, Edge of Orthogonality (ICML, arXiv 2302.04817): Stiefel with α = 0.3, 68.8 / 72.1 "
        "% vs the trained linear predictor's 67.6 / 71.5 % top-1 (ImageNet, 100 / 300 epochs); no normalization "
        "of the latents stated",
        "better",
        IMG,
        image_key("stiefel", "model.predictor.normalize=false", "model.predictor.alpha=0.3"),
        image_key("byol", LINEAR_PREDICTOR),
    ),
    Claim(
        "CCSL beats BYOL",
        "arXiv 2204.04545 (self-labeling refinement), abstract: CCSL 76.87 % vs vanilla BYOL 71.04 % (STL-10)",
        "better",
        IMG,
        image_key("ccsl"),
        image_key("byol"),
    ),
    Claim(
        "CSSL matches BYOL",
        "arXiv 2204.04545, abstract: 'BYOL trained using CSSL loss performs comparably with Vanilla BYOL' (STL-10)",
        "comparable",
        IMG,
        image_key("cssl"),
        image_key("byol"),
    ),
    Claim(
        "GroupNorm + WS (no batch statistics) matches BatchNorm",
        "Richemond et al. 2020 (arXiv 2010.10241), abstract: 73.9 % vs 74.3 % top-1 (ImageNet, ResNet-50)",
        "comparable",
        IMG,
        image_key("gn_ws"),
        image_key("byol"),
    ),
    Claim(
        "without any normalization BYOL collapses",
        "Richemond et al. 2020: removing every BN gives 0.1 % top-1 (ImageNet, 300 epochs; per-component ablation)",
        "collapses",
        IMG,
        image_key("nonorm"),
    ),
    Claim(
        "SimSiam (no momentum target) is competitive with BYOL",
        "Chen & He 2021 (CVPR, arXiv 2011.10566): SimSiam 'can be thought of as BYOL without the momentum "
        "encoder'; 68.1 % top-1 at 100 ImageNet epochs (official README)",
        "comparable",
        IMG,
        image_key("simsiam"),
        image_key("byol"),
    ),
    *[
        byol_loses_less_than_simclr(
            what,
            f"{GRILL}, Fig. 3b / App. F.3 Table 17: {numbers} (ImageNet, 300 epochs, linear top-1)",
            ops,
            caveat="at this size BYOL with the crop alone scores what it scores with every augmentation: its small "
            "drop also says that 12 epochs have not taught it to use the views taken away",
        )
        for what, ops, numbers in (
            (
                "when colour distortion (jitter + grayscale) is removed",
                NO_COLOUR,
                "BYOL 72.5 → 63.4 (−9.1), SimCLR 67.9 → 45.7 (−22.2)",
            ),
            (
                "when only the crop remains (no flip, colour or solarization)",
                CROP_ONLY,
                "BYOL 72.5 → 59.4 (−13.1), SimCLR 67.9 → 40.3 (−27.6)",
            ),
        )
    ],
    Claim(
        "without the predictor BYOL collapses",
        f"{GRILL}, Table 5b: no predictor 0.2 % top-1 (ImageNet, 300 epochs)",
        "collapses",
        IMG,
        image_key("byol", "model.predictor=null"),
    ),
    Claim(
        "with τ = 0 (the online network as target) BYOL collapses",
        f"{GRILL}, Table 5a: τ = τ_base = 0 kept constant throughout training (its †) → 0.3 % top-1; ours: "
        "ema.schedule constant (under the cosine schedule τ would rise from 0 to 1)",
        "collapses",
        IMG,
        image_key("byol", *TAU_0_CONSTANT),
    ),
    Claim(
        "a fixed random target (τ_base = 1) learns far less than a moving average, but does not collapse",
        f"{GRILL}, Table 5a: τ_base 1 → 18.8 % vs 72.5 % at 0.99 (and 0.3 % for the collapsed τ_base 0)",
        "worse, no collapse",
        IMG,
        image_key("byol", "ema.tau_base=1.0"),
        image_key("byol"),
    ),
    Claim(
        "τ_base from 0.9 to 0.999 is a broad optimum",
        f"{GRILL}, Table 5a: τ_base 0.9 / 0.99 / 0.999 → 68.4 / 72.5 / 69.8 %, vs 18.8 % at 1 and 0.3 % at 0 (issue "
        "34 words it 0.9 … 0.99; the table puts 0.999 inside, so it is a member, with the recipe's 0.97)",
        "plateau",
        IMG,
        image_key("byol", "ema.tau_base=0.9"),
        members=(
            image_key("byol", "ema.tau_base=0.9"),
            image_key("byol"),
            image_key("byol", "ema.tau_base=0.99"),
            image_key("byol", "ema.tau_base=0.999"),
        ),
        outsiders=(image_key("byol", "ema.tau_base=1.0"), image_key("byol", *TAU_0_CONSTANT)),
    ),
    byol_loses_less_than_simclr(
        "at a 4× smaller batch (same optimizer batch, accumulated)",
        f"{GRILL}, Fig. 3a / App. F.2 Table 16: batch 4096 → 256, BYOL 72.5 → 71.8 (−0.7), SimCLR 67.9 → "
        "64.3 (−3.6); ours 128 → 32 × 4 accumulated, only BatchNorm and the negatives see the small batch",
        SMALL_BATCH,
    ),
    *[
        c
        for task in ("fsdd_digits", "emodb")
        for c in (
            Claim(
                f"BYOL-A: mixup + random resize crop beat random resize crop alone ({task})",
                f"{NIIZUMI}, Table II: mixup + RRC 72.3 % average vs RRC alone 68.4 % (SPCV2 87.2 vs 77.4); ours on "
                "v2's views (the linear fader stays)",
                "better",
                AUD,
                ABL.format("full"),
                ABL.format("no_mixup"),
                f"linear.{task}",
            ),
            Claim(
                f"BYOL-A: mixup + random resize crop beat mixup alone ({task})",
                f"{NIIZUMI}, Table II: mixup + RRC 72.3 % average vs mixup alone 63.9 % (SPCV2 87.2 vs 82.0)",
                "better",
                AUD,
                ABL.format("full"),
                ABL.format("no_rrc"),
                f"linear.{task}",
            ),
            Claim(
                f"BYOL-A v2's random linear fader improves the views ({task})",
                "Niizumi et al. 2023 (IEEE/ACM TASLP, arXiv 2204.07402) add the random linear fader to v2's views; its "
                "ablation's numbers were not found in the material searched (issue 34)",
                "better",
                AUD,
                ABL.format("full"),
                ABL.format("no_fader"),
                f"linear.{task}",
            ),
            Claim(
                f"BYOL-A: removing post-normalization costs less than removing pre-normalization ({task})",
                f"{NIIZUMI}, Table III: without post-norm −0.2, without pre-norm −1.8 to −3.4 points (average)",
                "smaller drop",
                AUD,
                ABL.format("no_postnorm"),
                ABL.format("no_prenorm"),
                f"linear.{task}",
                a_full=ABL.format("full"),
                b_full=ABL.format("full"),
            ),
        )
    ],
    *[
        Claim(
            f"BYOL-A v2 improves on v1 ({task})",
            "Niizumi et al. 2023 (IEEE/ACM TASLP, arXiv 2204.07402): v2's "
            "augmentations and AudioNTT2022 encoder improve the general-purpose benchmark over v1",
            "better",
            AUD,
            "byola_v2",
            "byola_v1",
            f"linear.{task}",
        )
        for task in ("emodb", "fsdd_digits")
    ],
    *[
        Claim(
            f"TriBYOL beats BYOL-A at batch 64 ({task})",
            "Li et al. 2022 (arXiv 2206.03012), the small-batch claim, carried over to BYOL-A's audio setting",
            "better",
            AUD,
            "tribyol",
            "byola_v1",
            f"linear.{task}",
        )
        for task in ("emodb", "fsdd_digits")
    ],
    *[
        Claim(
            f"BYOL fine-tuned beats training from scratch with {pct} of the labels",
            f"{GRILL}, Table 2a / App. C.1: ImageNet {pct} labels, BYOL fine-tuned {ours} vs supervised {theirs} % "
            "top-1; ours: CIFAR-10 20k subset, bench_finetune.py",
            "better",
            FT,
            f"cifar10/finetune@{pct} byol",
            f"cifar10/finetune@{pct} random",
            "score",
        )
        for pct, ours, theirs in (("1%", "53.2", "25.4"), ("10%", "68.8", "56.4"))
    ],
    *[
        Claim(
            f"BYOL-A fine-tuned beats training from scratch ({key}, {pct} of the labels)",
            f"{GRILL}, Table 2a's claim (fine-tuned BYOL beats supervised from scratch) carried over to BYOL-A "
            "(issue 33): no BYOL-A paper compares with training from scratch; ours: byola_cpu_8min.yaml at 320 steps, "
            f"{task}_finetune.yaml",
            "better",
            FT,
            f"{key}/finetune{tag} byol",
            f"{key}/finetune{tag} random",
            "score",
        )
        for task, key, pct, tag in (
            ("emodb", "emodb", "15 %", "@15%"),
            ("emodb", "emodb", "100 %", ""),
            ("fsdd", "fsdd_digits", "2 %", "@2%"),
            ("fsdd", "fsdd_digits", "100 %", ""),
        )
    ],
    Claim(
        "BYOL's gain over training from scratch is smaller with 10 % of the labels than with 1 %",
        f"{GRILL}, Table 2a: +27.8 points at 1 %, +12.4 at 10 % (the drop compared: BYOL − scratch, per seed)",
        "smaller drop",
        FT,
        "cifar10/finetune@10% random",
        "cifar10/finetune@1% random",
        "score",
        a_full="cifar10/finetune@10% byol",
        b_full="cifar10/finetune@1% byol",
        drop_word="gain",
    ),
]

"""benchmarks/claims/validity_verdicts.py (issue 17's claims) and the audio-budget bench it reads: the verdict rules on
hand-made seeds, every claim naming runs the harnesses produce, and the shipped 8-minute recipe being its lever."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module(name):
    path = next((ROOT / "benchmarks").glob(f"*/{name}.py"))  # benchmarks/<purpose>/<name>.py
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


catalog, verdicts, variants, budget, finetune_bench = (
    _module(n) for n in ("claim_catalog", "validity_verdicts", "bench_variants", "bench_audio_budget", "bench_finetune")
)
BETTER = catalog.Claim("x", "src", "better", catalog.IMG, "a", "b")
SAME = catalog.Claim("x", "src", "comparable", catalog.IMG, "a", "b")
COLLAPSE = catalog.Claim("x", "src", "collapses", catalog.IMG, "a")


@pytest.mark.parametrize(
    "claim, a, b, expected",
    [
        (BETTER, [0.50, 0.52], [0.40, 0.42], "reproduced"),
        (BETTER, [0.40, 0.42], [0.50, 0.52], "not reproduced at this size"),
        (BETTER, [0.44, 0.52], [0.42, 0.47], "inconclusive (spreads overlap)"),  # 0.48 ± 0.057 vs 0.445 ± 0.035
        (SAME, [0.44, 0.46], [0.45, 0.47], "reproduced"),  # |Δ| = 1 point ≤ 3
        (SAME, [0.45, 0.45], [0.42, 0.42], "reproduced"),  # 3 points exactly (0.030000000000000027 in floats)
        (SAME, [0.452, 0.452], [0.42, 0.42], "reproduced and exceeded (A ahead, spreads apart)"),  # 3.2 points
        (SAME, [0.38, 0.38], [0.42, 0.42], "not reproduced at this size"),  # 4 points behind
        (SAME, [0.30, 0.31], [0.45, 0.46], "not reproduced at this size"),
        (SAME, [0.30, 0.46], [0.45, 0.46], "inconclusive (spreads overlap)"),  # Δ = −7.5 points, 0.38 ± 0.113
        (SAME, [0.60, 0.61], [0.45, 0.46], "reproduced and exceeded (A ahead, spreads apart)"),  # +15 points
        (SAME, [0.45, 0.61], [0.45, 0.46], "inconclusive (spreads overlap)"),  # +7.5 points, 0.53 ± 0.113
        (BETTER, [0.50], [0.40, 0.42], "pending (1 of 3 and 2 of 3 runs)"),
    ],
)
def test_verdict_rules(claim, a, b, expected):
    assert verdicts.verdict(claim, a, b, []) == expected


def test_collapse_verdict_needs_every_seed_collapsed():
    assert verdicts.verdict(COLLAPSE, [], [], [0.001, 0.049]) == "reproduced"
    assert verdicts.verdict(COLLAPSE, [], [], [0.001, 0.051]) == "not reproduced at this size"  # threshold 0.05
    assert verdicts.verdict(COLLAPSE, [], [], [0.001]).startswith("pending")
    # a run without a final collapse metric (diverged) is not counted as collapsed, nor dropped
    assert verdicts.verdict(COLLAPSE, [], [], [0.001, 0.002, None]) == (
        "inconclusive (1 seed(s) without a final collapse metric)"
    )


def test_a_claim_of_an_unknown_kind_or_missing_its_runs_is_refused():
    with pytest.raises(ValueError, match="kind 'beter' is not one of"):
        catalog.Claim("x", "src", "beter", catalog.IMG, "a", "b")
    with pytest.raises(ValueError, match="members and outsiders"):
        catalog.Claim("x", "src", "plateau", catalog.IMG, "a")
    with pytest.raises(ValueError, match="a_full and b_full"):
        catalog.Claim("x", "src", "smaller drop", catalog.IMG, "a", "b", a_full="f")
    with pytest.raises(ValueError, match="not 'plateau'"):
        verdicts.verdict(
            catalog.Claim("x", "s", "plateau", catalog.IMG, "a", members=("a",), outsiders=("b",)), [], [], []
        )


def test_a_caveat_rides_on_every_verdict_but_pending():
    c = catalog.Claim("x", "src", "better", catalog.IMG, "a", "b", caveat="not the paper's formula")
    assert verdicts.with_caveat(c, verdicts.verdict(c, [0.2, 0.21], [0.4, 0.42], [])) == (
        "not reproduced at this size (not the paper's formula)"
    )
    assert verdicts.with_caveat(c, verdicts.verdict(c, [0.2], [0.4, 0.42], [])) == "pending (1 of 3 and 2 of 3 runs)"
    assert verdicts.with_caveat(BETTER, "reproduced") == "reproduced"
    caveated = [c.name for c in catalog.CLAIMS if c.caveat]  # stiefel's formula; BYOL not using colour at this size
    assert len(caveated) == 3 and sum(n.startswith("BYOL loses less than SimCLR when") for n in caveated) == 2


def test_every_claim_names_runs_the_harnesses_make():
    image = {
        re.sub(r" seed=0$", "", variants._config(path, ov, 0))
        for _, _, path, ov in variants.plan([*variants.GROUPS, *variants.EXTRA_GROUPS], "image", "full")
    }
    audio = set(budget.VALIDITY_CONFIGS.values())
    finetune = finetune_bench.row_keys("image") | finetune_bench.row_keys("audio")
    for c in catalog.CLAIMS:
        names = {catalog.IMG: image, catalog.AUD: audio, catalog.FT: finetune}[c.file]
        assert c.a in names and (c.kind in ("collapses", "plateau") or c.b in names), c.name
        assert all(k in names for k in (*c.members, *c.outsiders) + ((c.a_full, c.b_full) if c.a_full else ())), c


def test_rows_are_read_by_key_and_metric(tmp_path, monkeypatch):
    monkeypatch.setattr(verdicts, "RESULTS", tmp_path)
    (tmp_path / catalog.AUD).write_text(
        '{"config": "byola_v1", "seed": 0, "linear": {"emodb": 0.5}, "final_collapse": 0.9}\n'
        '{"config": "byola_v1", "seed": 1, "linear": {"emodb": 0.7}, "final_collapse": 0.8}\n{"config": "by'
    )
    rows = verdicts.runs(catalog.AUD)["byola_v1"]  # the line cut short by a kill is skipped
    assert verdicts.values(rows, "linear.emodb") == [0.5, 0.7] and verdicts.values(rows, "linear.knn") == []


def test_a_seed_logged_twice_counts_once_with_its_last_row(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(verdicts, "RESULTS", tmp_path)
    (tmp_path / catalog.IMG).write_text(
        "".join(
            f'{{"key": "{k} seed={s}", "seed": {s}, "linear": {v}}}\n'
            for k, s, v in (("a", 0, 0.50), ("a", 0, 0.52), ("b", 0, 0.40), ("b", 1, 0.41))
        )
    )
    got = verdicts.runs(catalog.IMG)
    assert verdicts.values(got["a"], "linear") == [0.52] and len(got["b"]) == 2
    assert "a seed 0 is logged twice" in capsys.readouterr().err
    monkeypatch.setattr(verdicts, "CLAIMS", [BETTER])
    assert verdicts.assess()[0]["verdict"] == "pending (1 of 3 and 2 of 3 runs)"  # one seed of A, not two


def test_a_results_line_that_does_not_parse_before_the_last_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(verdicts, "RESULTS", tmp_path)
    (tmp_path / catalog.AUD).write_text('{"config": "v", "seed": 0}\n{"config": "v", "se\n{"config": "v", "seed": 1}\n')
    with pytest.raises(ValueError, match=rf"{catalog.AUD}:2: not a JSON line"):
        verdicts.runs(catalog.AUD)
    (tmp_path / catalog.AUD).write_text('{"config": "v", "seed": 0}\n{"config": "v", "linear": 0.5}\n')
    with pytest.raises(ValueError, match=rf"{catalog.AUD}: row 2 has no seed"):
        verdicts.runs(catalog.AUD)


def test_paired_differences_use_the_seeds_both_sides_ran(tmp_path, monkeypatch):
    monkeypatch.setattr(verdicts, "RESULTS", tmp_path)
    a = [{"seed": 0, "linear": 0.45}, {"seed": 1, "linear": 0.39}, {"seed": 3, "linear": 0.40}]
    b = [{"seed": 1, "linear": 0.38}, {"seed": 0, "linear": 0.43}, {"seed": 2, "linear": 0.42}]
    d = verdicts.paired(a, b, "linear")
    assert [round(x, 6) for x in d] == [0.02, 0.01]  # seeds 0 and 1; 2 and 3 have no partner
    assert verdicts.paired(a, [{"seed": 0, "linear": float("nan")}], "linear") == []
    row = {
        "claim": "c",
        "source": "S 2020, t",
        "kind": "better",
        "metric": "linear",
        "a": "x",
        "b": "y",
        "a_values": [0.45, 0.39],
        "b_values": [0.43, 0.38],
        "a_collapse": [],
        "paired_differences": d,
        "verdict": "v",
    }
    assert "| +1.5 ± 0.7 (n=2) | v | S 2020 |" in verdicts.markdown([row])  # mean 1.5, std 0.71 points


def test_a_collapse_row_shows_the_collapse_metric_and_the_accuracy_it_costs():
    row = {
        "claim": "c",
        "source": "S 2020",
        "kind": "collapses",
        "metric": "linear",
        "a": "x",
        "b": None,
        "a_values": [0.135, 0.118, 0.119],
        "b_values": [],
        "a_collapse": [0.0013, 0.0011, 0.0012],
        "paired_differences": [],
        "verdict": "reproduced",
    }  # std of 13.5, 11.8, 11.9: sqrt(1.82 / 2) = 0.95
    cell = "| x: collapse 0.001 ± 0.000 (n=3); linear 12.4 ± 1.0 (n=3) |  |  | reproduced |"
    assert cell in verdicts.markdown([row])


DROP_ROWS = [  # full and ablated runs of two methods: A drops 2 and 3 points, B 10 and 12 (seed 2: B only)
    ("byol_cifar10_cpu", 0, 0.45),
    ("byol_cifar10_cpu", 1, 0.44),
    ("byol_cifar10_cpu x", 0, 0.43),
    ("byol_cifar10_cpu x", 1, 0.41),
    ("simclr_cifar10_cpu", 0, 0.40),
    ("simclr_cifar10_cpu", 1, 0.42),
    ("simclr_cifar10_cpu", 2, 0.40),
    ("simclr_cifar10_cpu x", 0, 0.30),
    ("simclr_cifar10_cpu x", 1, 0.30),
]


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0.02, 0.03], [0.10, 0.12], "reproduced"),
        ([0.10, 0.12], [0.02, 0.03], "not reproduced at this size"),
        ([0.02, 0.08], [0.05, 0.07], "inconclusive (spreads overlap)"),
        ([0.02], [0.10, 0.12], "pending (1 of 3 and 2 of 3 seeds with both runs)"),
    ],
)
def test_drop_rule(a, b, expected):
    assert verdicts.drop_verdict(a, b) == expected


def test_drops_are_measured_per_method_on_the_seeds_that_ran_both(tmp_path, monkeypatch):
    monkeypatch.setattr(verdicts, "RESULTS", tmp_path)
    (tmp_path / catalog.IMG).write_text(
        "".join(
            f'{{"key": "{k} seed={seed}", "seed": {seed}, "linear": {v}, "final_collapse": 0.8}}\n'
            for k, seed, v in DROP_ROWS
        )
    )
    claim = catalog.Claim(
        "c",
        "s",
        "smaller drop",
        catalog.IMG,
        "byol_cifar10_cpu x",
        "simclr_cifar10_cpu x",
        a_full="byol_cifar10_cpu",
        b_full="simclr_cifar10_cpu",
    )
    monkeypatch.setattr(verdicts, "CLAIMS", [claim])
    (row,) = verdicts.assess()
    assert [round(v, 6) for v in row["a_values"]] == [0.02, 0.03] and [round(v, 6) for v in row["b_values"]] == [
        0.1,
        0.12,
    ]
    assert [round(v, 6) for v in row["paired_differences"]] == [0.08, 0.09] and row["verdict"] == "reproduced"
    assert "| c | byol_cifar10_cpu x: drop 2.5 ± 0.7 (n=2)" in verdicts.markdown([row])


def test_worse_without_collapse_and_plateau_rules():
    worse = verdicts.worse_without_collapse_verdict
    assert worse([0.20, 0.22], [0.42, 0.45], [0.3, 0.4]) == "reproduced"
    assert worse([0.20, 0.22], [0.42, 0.45], [0.3, 0.049]) == (
        "not reproduced at this size (collapsed: final collapse metric 0.049)"
    )
    assert worse([0.20, 0.22], [0.42, 0.45], [0.3, 0.051]) == "reproduced"  # threshold 0.05
    assert worse([0.40, 0.46], [0.42, 0.45], [0.3, 0.4]) == "inconclusive (spreads overlap)"
    assert worse([0.50, 0.52], [0.42, 0.45], [0.3, 0.4]) == "not reproduced at this size"  # A ahead, apart
    assert worse([0.20, 0.22], [0.42, 0.45], [0.3, None]) == "inconclusive (1 seed(s) without a final collapse metric)"
    assert worse([0.20], [0.42, 0.45], [0.3]).startswith("pending")
    plateau = verdicts.plateau_verdict
    inside = [[0.42, 0.44], [0.44, 0.45], [0.43, 0.42]]  # means 43, 44.5, 42.5: spread 2 points
    assert plateau(inside, [[0.2, 0.21], [0.1, 0.1]]) == "reproduced"  # gap 42.5 − 20.5 = 22 points
    assert (
        plateau([[0.30, 0.30], *inside[1:]], [[0.2, 0.21], [0.1, 0.1]]) == "not reproduced at this size"
    )  # 14.5 ≥ 9.5
    assert plateau([[0.36, 0.36], *inside[1:]], [[0.2, 0.21], [0.1, 0.1]]) == "reproduced"  # spread 8.5 < gap 15.5
    paper = [[0.684] * 2, [0.725] * 2, [0.698] * 2]  # BYOL Table 5a: τ_base 0.9 / 0.99 / 0.999 vs 1 and 0
    assert plateau(paper, [[0.188] * 2, [0.003] * 2]) == "reproduced"
    assert plateau(inside, [[0.44, 0.44], [0.1, 0.1]]) == "not reproduced at this size"  # an outsider as good
    assert plateau(inside, [[0.2], [0.1, 0.1]]).startswith("pending")


def test_the_claim_table_names_the_ablations_in_words():
    key = catalog.image_key("simclr", *catalog.CROP_ONLY)
    assert verdicts.short_key(key) == "simclr_cifar10_cpu crop only"
    assert verdicts.short_key(catalog.image_key("byol", *catalog.SMALL_BATCH)) == "byol_cifar10_cpu bs 32×4"


def test_the_readme_table_holds_the_seed_papers_claims_as_the_committed_runs_give_them(tmp_path):
    rows = verdicts.assess()
    table = verdicts.readme_table(rows)
    assert table in (ROOT / "README.md").read_text(), "README is stale: run benchmarks/claims/validity_verdicts.py"
    seed_paper = [r["claim"] for r in rows if r["source"].startswith(("Grill", "Niizumi"))]
    others = [r["claim"] for r in rows if not r["source"].startswith(("Grill", "Niizumi"))]
    assert seed_paper and others
    assert all(f"| {c} |" in table for c in seed_paper) and not any(f"| {c} |" in table for c in others)
    gain = next(r for r in rows if r["claim"].startswith("BYOL's gain"))
    assert gain["drop_word"] == "gain" and f"| gain {verdicts._cell(gain['a_values'])} |" in table
    readme = tmp_path / "README.md"  # the writer replaces only what lies between the markers
    start, end = verdicts.README_MARKS
    readme.write_text(f"# t\n{start}\nold\n{end}\ntail\n")
    verdicts.write_readme(rows, readme)
    verdicts.write_readme(rows, readme)
    assert readme.read_text() == f"# t\n{start}\n{table}{end}\ntail\n"


def test_a_verdict_with_a_caveat_is_marked_in_the_readme_and_a_pending_one_is_not():
    row = next(r for r in verdicts.assess() if r["source"].startswith("Grill"))
    marked = {**row, "verdict": "reproduced (why)", "caveat": "why"}
    plain = {**row, "verdict": "reproduced", "caveat": ""}
    assert "| reproduced\\* |" in verdicts.readme_table([marked]) and "\\* with a caveat" in verdicts.readme_table(
        [marked]
    )
    assert "\\*" not in verdicts.readme_table([plain])


plots = _module("plot_seed_claims")


def test_the_seed_claim_plots_draw_our_runs_beside_the_papers_numbers(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    rows = [
        {"key": f"{catalog.image_key(v, *ov)} seed={s}", "seed": s, "linear": acc + s / 100}
        for v, base in (("byol", 0.45), ("simclr", 0.59))
        for (_, ov), acc in zip(plots.AUGMENTATION_SETS, (base, base - 0.05, base - 0.1))
        for s in (0, 1)
    ]
    (results / catalog.IMG).write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(verdicts, "RESULTS", results)
    runs = verdicts.runs(catalog.IMG)
    assert plots.plot_augmentations(runs, tmp_path).stat().st_size > 10_000
    assert plots.plot_target(runs, tmp_path) is None  # only the recipe's own τ_base ran: nothing to compare
    runs[catalog.image_key("byol", *catalog.TAU_0_CONSTANT)] = [{"seed": 0, "linear": 0.1}]
    assert plots.plot_target(runs, tmp_path).name == "seed_claims_target.png"


def test_the_plots_quote_the_paper_numbers_the_claims_cite():
    sources = " ".join(c.source for c in catalog.CLAIMS if "Table 17" in c.source or "Table 5" in c.source)
    for value in [*(v for vs in plots.PAPER_AUGMENTATIONS.values() for v in vs), *plots.PAPER_TAU.values()]:
        assert f"{value}" in sources, value


def test_a_plateau_row_judges_and_shows_every_member_and_outsider(tmp_path, monkeypatch):
    monkeypatch.setattr(verdicts, "RESULTS", tmp_path)
    runs = {"s": (0.44, 0.45), "s t=0.9": (0.42, 0.43), "s t=1": (0.30, 0.31), "s t=0": (0.10, 0.11)}
    (tmp_path / catalog.IMG).write_text(
        "".join(
            f'{{"key": "{k} seed={i}", "seed": {i}, "linear": {v}, "final_collapse": 0.5}}\n'
            for k, vs in runs.items()
            for i, v in enumerate(vs)
        )
    )
    claim = catalog.Claim(
        "p",
        "Grill et al. 2020",
        "plateau",
        catalog.IMG,
        "s t=0.9",
        members=("s t=0.9", "s"),
        outsiders=("s t=1", "s t=0"),
    )
    monkeypatch.setattr(verdicts, "CLAIMS", [claim])
    (row,) = verdicts.assess()
    assert row["verdict"] == "reproduced"  # members 42.5 and 44.5: spread 2 points, gap 12 down to 30.5
    cells = "| p | s: t=0.9: 42.5 ± 0.7 (n=2); recipe: 44.5 ± 0.7 (n=2) | outside: t=1: 30.5 ± 0.7 (n=2); t=0: "
    assert cells in verdicts.markdown([row])
    assert "| p | t=0.9: 42.5 ± 0.7 (n=2); recipe: 44.5 ± 0.7 (n=2) | outside: t=1: " in verdicts.readme_table([row])
    runs["s t=0.9"] = (0.32, 0.33)  # 32.5: spread 12 points, more than the gap of 2 down to τ 1
    (tmp_path / catalog.IMG).write_text(
        "".join(
            f'{{"key": "{k} seed={i}", "seed": {i}, "linear": {v}}}\n'
            for k, vs in runs.items()
            for i, v in enumerate(vs)
        )
    )
    assert verdicts.assess()[0]["verdict"] == "not reproduced at this size"


def test_check_writes_nothing_and_fails_on_a_stale_output(tmp_path, monkeypatch):
    monkeypatch.setattr(verdicts, "RESULTS", tmp_path)
    readme = tmp_path / "README.md"
    start, end = verdicts.README_MARKS
    readme.write_text(f"# t\n{start}\nold\n{end}\n")
    monkeypatch.setattr(verdicts, "README", readme)
    monkeypatch.setattr(verdicts, "ROOT", tmp_path)
    monkeypatch.setattr(verdicts, "CLAIMS", [BETTER])
    assert verdicts.main(["--check"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"] and "old" in readme.read_text()
    assert verdicts.main([]) == 0
    assert verdicts.main(["--check"]) == 0
    assert "pending" in (tmp_path / "validity_claims.md").read_text() and "old" not in readme.read_text()

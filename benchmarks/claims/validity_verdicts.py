"""The papers' claims against the runs at a size where BYOL learns (issues 17 and 34): one verdict per claim.

Reads ``benchmarks/results/validity_image.jsonl`` (``bench_variants.py --size full --jsonl ...``: the
``byol_cifar10_cpu.yaml`` size, equal epochs), ``validity_audio.jsonl`` (written by ``bench_audio_budget.py`` from
its BYOL-A runs at the 8-minute size) and ``finetune_claims.jsonl`` (``bench_finetune.py``, issue 33: fine-tuning
with few labels); writes ``validity_claims.{md,json}`` and the README's table of the seed papers' claims (BYOL,
BYOL-A): per claim the source, our mean ± std over pretraining seeds, the differences A − B on the seeds both sides
ran (shown beside the verdict, which does not use them) and the verdict (in the README, a verdict that carries a
caveat is marked with an asterisk and the caveat is read in the claims table). ``plot_seed_claims.py`` draws the
seed papers' figures from the same runs.

Verdicts, on the claim's metric (linear accuracy unless named), mean ± sample std over ≥ 2 seeds:

- a "better" claim (A beats B) is *reproduced* when the intervals mean ± std do not overlap and A is ahead,
  *not reproduced at this size* when they do not overlap and B is ahead, *inconclusive* when they overlap;
- a "comparable" claim (A matches B) is *reproduced* when |mean A − mean B| ≤ the claim's tolerance (3 points, the
  issue's own bar for BN-free BYOL), *not reproduced at this size* when A is behind by more than the tolerance with
  intervals that do not overlap, *reproduced and exceeded* when A is ahead by more than the tolerance with intervals
  that do not overlap (the claim that A does as well holds, with room), else *inconclusive*;
- a "collapses" claim is *reproduced* when every seed ends with the collapse metric below 0.05, *not reproduced at
  this size* when some seed ends at or above it, *inconclusive* when a seed has no final collapse metric (a run
  that diverged);
- a "smaller drop" claim (A loses less than B when the same thing is taken away: BYOL vs SimCLR without colour
  distortion, with crops only, at a smaller batch) compares the drops full − ablated, each measured on the seeds
  that ran both the full and the ablated recipe of its method: *reproduced* when the intervals mean ± std of the two
  drops do not overlap and A's drop is the smaller, *not reproduced at this size* when they do not overlap and A's
  is the larger, *inconclusive* when they overlap;
- a "worse, no collapse" claim (A learns far less than B but does not collapse: BYOL's fixed random target) is
  *not reproduced at this size* when some seed of A ends with the collapse metric below 0.05 (it collapsed), and
  otherwise (every seed of A at or above it) *reproduced* when B is ahead with intervals apart, *not reproduced at
  this size* when A is ahead with intervals apart, *inconclusive* when the intervals overlap or a seed of A has no
  final collapse metric;
- a "plateau" claim (the members are a broad optimum: τ_base 0.9 … 0.999) is *reproduced* when every member's mean
  is above every outsider's (τ_base 1 and 0) and the members' means spread less than the gap from the lowest
  member down to the highest outsider (the paper's own numbers: spread 4.1 points, 68.4 … 72.5 %, gap 49.6 down
  to 18.8 %), *not reproduced at this size* otherwise;
- fewer than 2 seeds of either side (every member and outsider of a plateau): *pending* (and how many runs exist).

A seed logged twice (a rerun) counts once, with its last row (a warning names it); the results files are read by
``benchmarks/jsonl_log.py`` (a line that does not parse is an error, except a last line cut short by a kill).

    python benchmarks/claims/validity_verdicts.py           # rewrite validity_claims.{md,json} and the README table
    python benchmarks/claims/validity_verdicts.py --check   # write nothing; exit 1 when one of them is stale
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT / "benchmarks")]

from claim_catalog import AUD, CLAIMS, CROP_ONLY, FT, IMG, NO_COLOUR, SMALL_BATCH, Claim  # noqa: E402
from jsonl_log import read_jsonl  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TOLERANCE = 0.03  # "comparable": within 3 points
COLLAPSED = 0.05  # a final collapse metric below this is a collapsed run


def runs(file: str) -> dict[str, list[dict]]:
    """Rows of one results file by run key without the seed, one per seed (a rerun's last row)."""
    by_seed: dict[tuple[str, int], dict] = {}
    for i, row in enumerate(read_jsonl(RESULTS / file), 1):
        if "seed" not in row or not (row.get("key") or row.get("config")):
            raise ValueError(f"{RESULTS / file}: row {i} has no seed, or neither a key nor a config: {str(row)[:120]}")
        key = re.sub(r" seed=\d+$", "", row.get("key") or row["config"])
        if (key, row["seed"]) in by_seed:
            print(f"{RESULTS / file}: {key} seed {row['seed']} is logged twice; its last row counts", file=sys.stderr)
        by_seed[key, row["seed"]] = row
    out: dict[str, list[dict]] = {}
    for (key, _), row in by_seed.items():
        out.setdefault(key, []).append(row)
    return out


def _value(row: dict, metric: str) -> float | None:
    v = row
    for part in metric.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return None if v is None or math.isnan(float(v)) else float(v)


def values(rows: list[dict], metric: str) -> list[float]:
    return [v for v in (_value(r, metric) for r in rows) if v is not None]


def collapse_of_scored(rows: list[dict], metric: str) -> list[float | None]:
    """The final collapse metric of each seed that has a ``metric`` value (None where it has none)."""
    return [_value(r, "final_collapse") for r in rows if _value(r, metric) is not None]


def _no_collapse_metric(collapse: list[float | None]) -> str:
    return f"inconclusive ({collapse.count(None)} seed(s) without a final collapse metric)"


def paired(rows_a: list[dict], rows_b: list[dict], metric: str) -> list[float]:
    """A − B on each pretraining seed both sides ran (the seed sets both sides' data order and random draws)."""
    b = {r["seed"]: _value(r, metric) for r in rows_b}
    return [va - b[r["seed"]] for r in rows_a if (va := _value(r, metric)) is not None and b.get(r["seed"]) is not None]


def mean_std(v: list[float]) -> tuple[float, float]:
    m = sum(v) / len(v)
    return m, (sum((x - m) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else 0.0


def verdict(claim: Claim, a: list[float], b: list[float], collapse: list[float | None]) -> str:
    """A "better", "comparable" or "collapses" claim (``collapse``: each seed's final collapse metric, None where
    a run has none)."""
    if claim.kind == "collapses":
        if len(collapse) < 2:
            return f"pending ({len(collapse)} of 3 runs)"
        if None in collapse:
            return _no_collapse_metric(collapse)
        return "reproduced" if max(c for c in collapse if c is not None) < COLLAPSED else "not reproduced at this size"
    if claim.kind not in ("better", "comparable"):
        raise ValueError(f"claim {claim.name!r}: verdict() judges better / comparable / collapses, not {claim.kind!r}")
    if len(a) < 2 or len(b) < 2:
        return f"pending ({len(a)} of 3 and {len(b)} of 3 runs)"
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    apart = ma - sa > mb + sb or mb - sb > ma + sa
    if claim.kind == "better":
        return (
            "inconclusive (spreads overlap)"
            if not apart
            else ("reproduced" if ma > mb else "not reproduced at this size")
        )
    if within_tolerance(ma, mb):
        return "reproduced"
    if not apart:
        return "inconclusive (spreads overlap)"
    return "not reproduced at this size" if ma < mb else "reproduced and exceeded (A ahead, spreads apart)"


def drops(full: list[dict], ablated: list[dict], metric: str) -> dict[int, float]:
    """{seed: full − ablated} on each seed that ran both (a method's loss from taking something away)."""
    f = {r["seed"]: _value(r, metric) for r in full}
    return {
        r["seed"]: f[r["seed"]] - v
        for r in ablated
        if (v := _value(r, metric)) is not None and f.get(r["seed"]) is not None
    }


def drop_verdict(drop_a: list[float], drop_b: list[float]) -> str:
    if len(drop_a) < 2 or len(drop_b) < 2:
        return f"pending ({len(drop_a)} of 3 and {len(drop_b)} of 3 seeds with both runs)"
    (ma, sa), (mb, sb) = mean_std(drop_a), mean_std(drop_b)
    if ma + sa < mb - sb:
        return "reproduced"
    if ma - sa > mb + sb:
        return "not reproduced at this size"
    return "inconclusive (spreads overlap)"


def within_tolerance(ma: float, mb: float) -> bool:
    """|ma − mb| ≤ TOLERANCE, with 3 points exactly inside (0.45 − 0.42 is 0.030000000000000027 in floats)."""
    return abs(ma - mb) <= TOLERANCE + 1e-9


def worse_without_collapse_verdict(a: list[float], b: list[float], collapse: list[float | None]) -> str:
    """``collapse``: the final collapse metric of each seed of ``a`` (None where a run has none)."""
    if len(a) < 2 or len(b) < 2:
        return f"pending ({len(a)} of 3 and {len(b)} of 3 runs)"
    if (lowest := min((c for c in collapse if c is not None), default=None)) is not None and lowest < COLLAPSED:
        return f"not reproduced at this size (collapsed: final collapse metric {lowest:.3f})"
    if None in collapse:
        return _no_collapse_metric(collapse)
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    if ma + sa < mb - sb:
        return "reproduced"
    return "not reproduced at this size" if ma - sa > mb + sb else "inconclusive (spreads overlap)"


def plateau_verdict(members: list[list[float]], outsiders: list[list[float]]) -> str:
    sizes = [len(v) for v in members + outsiders]
    if min(sizes) < 2:
        return f"pending ({sum(min(n, 3) for n in sizes)} of {3 * len(sizes)} runs)"
    inside = [mean_std(v)[0] for v in members]
    outside = [mean_std(v)[0] for v in outsiders]
    gap = min(inside) - max(outside)
    return "reproduced" if gap > 0 and max(inside) - min(inside) < gap else "not reproduced at this size"


def shown_caveat(claim: Claim, text: str) -> str:
    """The claim's caveat, once its verdict is more than pending."""
    return claim.caveat if not text.startswith("pending") else ""


def with_caveat(claim: Claim, text: str) -> str:
    return f"{text} ({caveat})" if (caveat := shown_caveat(claim, text)) else text


def _cell(v: list[float], scale: float = 100, digits: int = 1) -> str:
    if not v:
        return "–"
    m, s = mean_std(v)
    return (
        f"{scale * m:.{digits}f} ± {scale * s:.{digits}f} (n={len(v)})"
        if len(v) > 1
        else f"{scale * m:.{digits}f} (n=1)"
    )


def assess() -> list[dict]:
    tables = {f: runs(f) for f in (IMG, AUD, FT)}
    out = []
    for c in CLAIMS:
        got = tables[c.file]
        rows_a, rows_b = got.get(c.a, []), got.get(c.b, [])
        a, b = values(rows_a, c.metric), values(rows_b, c.metric)
        collapse = values(rows_a, "final_collapse")
        diffs = paired(rows_a, rows_b, c.metric) if c.b else []
        groups: dict[str, dict[str, list[float]]] = {}
        if c.kind == "smaller drop":  # A and B are the drops; same seed: B's drop − A's drop
            da, db = drops(got.get(c.a_full, []), rows_a, c.metric), drops(got.get(c.b_full, []), rows_b, c.metric)
            a, b, diffs = list(da.values()), list(db.values()), [db[k] - da[k] for k in da if k in db]
            text = drop_verdict(a, b)
        elif c.kind == "worse, no collapse":
            text = worse_without_collapse_verdict(a, b, collapse_of_scored(rows_a, c.metric))
        elif c.kind == "plateau":
            groups = {
                side: {k: values(got.get(k, []), c.metric) for k in keys}
                for side, keys in (("members", c.members), ("outsiders", c.outsiders))
            }
            text = plateau_verdict(list(groups["members"].values()), list(groups["outsiders"].values()))
        else:
            text = verdict(c, a, b, [_value(r, "final_collapse") for r in rows_a])
        out.append(
            {
                "claim": c.name,
                "source": c.source,
                "kind": c.kind,
                "metric": c.metric,
                "a": c.a,
                "b": c.b,
                "a_values": a,
                "b_values": b,
                "a_collapse": collapse,
                "paired_differences": diffs,
                **groups,
                "verdict": with_caveat(c, text),
                "caveat": shown_caveat(c, text),
                "drop_word": c.drop_word,
            }
        )
    return out


def short_source(source: str) -> str:
    """'Li et al. 2022' of 'Li et al. 2022, TriBYOL (arXiv ...'."""
    return re.split(r"[,(:]", source)[0].strip()


SHORT = ((" ".join(CROP_ONLY), "crop only"), (" ".join(NO_COLOUR), "no colour"), (" ".join(SMALL_BATCH), "bs 32×4"))


def short_key(key: str) -> str:
    """A run key with the claims' override groups named (``byol_cifar10_cpu no colour``)."""
    for ops, name in SHORT:
        key = key.replace(ops, name)
    return key


def _group_cell(runs: dict[str, list[float]]) -> str:
    """A plateau's members (or outsiders), each by its overrides: ``ema.tau_base=0.9: 35.2 (n=1); ...``."""
    return "; ".join(f"{k.split(' ', 1)[1] if ' ' in k else 'recipe'}: {_cell(v)}" for k, v in runs.items())


def _outsiders_cell(r: dict) -> str:
    return f"outside: {_group_cell(r['outsiders'])}" if r["kind"] == "plateau" else ""


def _a_cell(r: dict) -> str:
    """A's cell: a collapse claim leads with the collapse metric, a plateau lists its members, the others give the
    claim's metric."""
    if r["kind"] == "plateau":
        return _group_cell(r["members"])
    if r["kind"] == "collapses":
        return f"collapse {_cell(r['a_collapse'], 1, 3)}; {r['metric']} {_cell(r['a_values'])}"
    collapse = f"; collapse {mean_std(r['a_collapse'])[0]:.2f}" if r["a_collapse"] else ""
    return _cell(r["a_values"]) + collapse


def _worded(r: dict, a: str, b: str) -> tuple[str, str]:
    """A 'smaller drop' claim's cells name what they hold (the drops full − ablated, or a gain)."""
    return (f"{r['drop_word']} {a}", f"{r['drop_word']} {b}") if r["kind"] == "smaller drop" else (a, b)


def markdown(rows: list[dict]) -> str:
    lines = [
        "# The seed papers' claims at a size where BYOL learns (benchmarks/claims/validity_verdicts.py)",
        "",
        "Images: `byol_cifar10_cpu.yaml` (narrow ResNet-18, 20k CIFAR-10 images × 12 epochs, bf16), every "
        "variant at equal epochs, converged linear probe of `recipes/eval/cifar10.yaml` (accuracy %). Audio: "
        "BYOL-A at the 8-minute 2-core CPU budget (`byola_v1_cpu_8min.yaml` and the v2 / TriBYOL levers "
        "of `bench_audio_budget.py`, v2 = `byola_cpu_8min.yaml`; equal time, so v2 takes about half the steps; "
        "the ablation's `byola_v2_320` runs: v2 at 320 fixed steps, one component taken away), EVAR linear probe "
        "on FSDD digits and EmoDB. Fine-tuning rows: `bench_finetune.py` (test accuracy). Mean ± std over "
        "pretraining seeds (n); A − B: the difference on each seed both ran, mean ± std (points); for a 'loses "
        "less' claim the cells are the drops full − ablated (a gain claim: BYOL − scratch) and the same-seed column "
        "is B's drop − A's drop; the verdict rules are in the script's docstring.",
        "",
        "<!-- --8<-- [start:table] -->",
        "| claim | ours: A | ours: B | A − B, same seed | verdict | source |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = _a_cell(r)
        d = r["paired_differences"]
        delta = (
            ""
            if not d
            else (
                f"{100 * mean_std(d)[0]:+.1f} ± {100 * mean_std(d)[1]:.1f} (n={len(d)})"
                if len(d) > 1
                else f"{100 * d[0]:+.1f} (n=1)"
            )
        )
        a, b = _worded(r, a, _cell(r["b_values"]))
        b = f"{short_key(r['b'])}: {b}" if r["b"] else _outsiders_cell(r)
        a = f"{short_key(r['a'].split(' ')[0] if r['kind'] == 'plateau' else r['a'])}: {a}"
        lines.append(f"| {r['claim']} | {a} | {b} | {delta} | {r['verdict']} | {short_source(r['source'])} |")
    lines += ["<!-- --8<-- [end:table] -->", "", "## Sources", ""]  # the docs include the table (docs/variants.md)
    lines += [f"- {r['claim']}: {r['source']}" for r in rows]
    return "\n".join(lines) + "\n"


README = ROOT / "README.md"
README_MARKS = (
    "<!-- seed-paper claims: start (validity_verdicts.py writes this table) -->",
    "<!-- seed-paper claims: end -->",
)


def readme_table(rows: list[dict]) -> str:
    """The README's table: the seed papers' claims (BYOL, BYOL-A), ours and the verdict's first words."""
    lines = ["| claim | ours: A | ours: B | verdict |", "|---|---|---|---|"]
    for r in rows:
        if short_source(r["source"]).split()[0] not in ("Grill", "Niizumi"):
            continue
        a, b = _worded(r, _cell(r["a_values"]), _cell(r["b_values"]) if r["b"] else _outsiders_cell(r))
        if r["kind"] == "collapses":
            a = f"collapse {_cell(r['a_collapse'], 1, 3)}"
        if r["kind"] == "plateau":
            a = _group_cell(r["members"])
        mark = "\\*" if r["caveat"] else ""
        lines.append(f"| {r['claim']} | {a} | {b} | {r['verdict'].split(' (')[0]}{mark} |")
    if any(r["caveat"] for r in rows):
        lines += ["", "\\* with a caveat, given beside the verdict in [variants and claims](docs/variants.md)."]
    return "\n".join(lines) + "\n"


def readme_with_table(rows: list[dict], path: Path) -> str:
    """The README at ``path`` with the table between its markers replaced (the rest of the file as it is)."""
    text = path.read_text()
    start, end = (text.index(m) for m in README_MARKS)
    return text[: start + len(README_MARKS[0])] + "\n" + readme_table(rows) + text[end:]


def write_readme(rows: list[dict], path: Path | None = None) -> None:
    path = path or README
    path.write_text(readme_with_table(rows, path))


def outputs(rows: list[dict]) -> dict[Path, str]:
    """What each written file holds once the verdicts are in."""
    return {
        RESULTS / "validity_claims.json": json.dumps(rows, indent=1) + "\n",
        RESULTS / "validity_claims.md": markdown(rows),
        README: readme_with_table(rows, README),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when a written file is stale")
    args = ap.parse_args(argv)
    rows = assess()
    files = outputs(rows)
    if args.check:
        stale = [path for path, text in files.items() if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run benchmarks/claims/validity_verdicts.py)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in files.items():
        path.write_text(text)
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""benchmarks/diagnoses/diagnose_stiefel.py: the ridge ratio and eigenvalue range it reports, by hand."""

import importlib.util
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "diagnoses"))
spec = importlib.util.spec_from_file_location(
    "diagnose_stiefel", ROOT / "benchmarks" / "diagnoses" / "diagnose_stiefel.py"
)
diag = importlib.util.module_from_spec(spec)
spec.loader.exec_module(diag)


def test_weight_shape_by_hand():
    w = torch.diag(torch.tensor([0.5, 0.1, 0.1, 0.1]))  # P = diag(0.4, 0, 0, 0) under α = 0.1
    s = diag.weight_shape(w, 0.1)
    assert math.isclose(s["p_fro"], 0.4, rel_tol=1e-12)
    assert math.isclose(s["p_over_ridge"], 0.4 / (0.1 * 2), rel_tol=1e-12)  # ‖0.1·I₄‖_F = 0.2
    assert math.isclose(s["w_eig_min"], 0.1, rel_tol=1e-6) and math.isclose(s["w_eig_max"], 0.5, rel_tol=1e-6)
    assert diag.weight_shape(w, 0.0)["p_over_ridge"] is None  # no ridge: no ratio


def test_every_case_names_a_recipe_that_loads():
    from medium_diagnosis import MEDIUM

    from ssl_toolkit.recipe import load_recipe

    for recipe, extra in diag.CASES.values():
        load_recipe(ROOT / recipe, MEDIUM + extra)

import re
import textwrap
from pathlib import Path

import pytest

from ssl_toolkit.recipe import RecipeError, expand_path, load_recipe


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


BASE = """
    name: base
    data: {dataset: {name: gaussian_clusters, size: 64}, batch_size: 16}
    views: {branches: [[{name: identity}], [{name: gaussian_noise}]]}
    model:
      encoder: {name: mlp_encoder, in_dim: 16}
      projector: {name: mlp, hidden_dim: 32, out_dim: 8}
      predictor: {name: mlp, hidden_dim: 32, out_dim: 8}
    optimizer: {name: sgd, lr: 0.1}
    trainer: {epochs: 3}
"""


def test_base_inheritance_deep_merge_and_relative_path(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "base.yaml", BASE)
    child = write(
        tmp_path / "sub" / "child.yaml",
        """
        base: ../base.yaml
        name: child
        data: {batch_size: 8}
        trainer: {max_steps: 5}
    """,
    )
    r = load_recipe(child)
    assert r.name == "child"
    assert r.data.batch_size == 8 and r.data.dataset["size"] == 64  # merged, not replaced
    assert r.trainer.epochs == 3 and r.trainer.max_steps == 5
    assert r.optimizer.lr == 0.1


def test_a_component_whose_name_changes_is_replaced_not_merged(tmp_path):
    """A derived recipe that names another component gets that section as written: nothing of the base's
    component (here the MLP predictor's hidden_dim/out_dim) leaks into it. The same name still merges."""
    write(tmp_path / "base.yaml", BASE)
    child = write(
        tmp_path / "child.yaml",
        """
        base: base.yaml
        model:
          predictor: {name: ns, n: 5}
          projector: {out_dim: 4}
    """,
    )
    r = load_recipe(child)
    assert dict(r.model.predictor) == {"name": "ns", "n": 5}
    assert dict(r.model.projector) == {"name": "mlp", "hidden_dim": 32, "out_dim": 4}


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["model.predictor.name=ns"], {"name": "ns"}),
        (["model.predictor.name=ns", "model.predictor.n=3"], {"name": "ns", "n": 3}),
        (["model.predictor.n=3", "model.predictor.name=ns"], {"name": "ns", "n": 3}),  # earlier override kept
        (["model.predictor={name: ns, alpha: 0.1}"], {"name": "ns", "alpha": 0.1}),
        (["model.predictor.name=mlp", "model.predictor.out_dim=8"], {"name": "mlp", "hidden_dim": 32, "out_dim": 8}),
    ],
)
def test_an_override_that_renames_a_component_starts_its_section_anew(tmp_path, overrides, expected):
    f = write(tmp_path / "r.yaml", BASE)
    assert dict(load_recipe(f, overrides).model.predictor) == expected


def test_overrides_are_yaml_scalars_and_index_lists(tmp_path):
    f = write(tmp_path / "r.yaml", BASE)
    r = load_recipe(
        f,
        [
            "trainer.epochs=7",
            "optimizer.lr=1e-3",
            "views.branches.1.0.max_std=0.5",
            "trainer.compile=true",
            "precision=bf16",
        ],
    )
    assert r.trainer.epochs == 7 and isinstance(r.trainer.epochs, int)
    assert r.optimizer.lr == pytest.approx(1e-3)
    assert r.views.branches[1][0]["max_std"] == 0.5
    assert r.trainer.compile is True and r.precision == "bf16"


@pytest.mark.parametrize(
    "override, key, words",
    [
        ("trainer.epocs=3", "trainer.epocs", "did you mean 'epochs'"),
        ("trainer.epochs=three", "trainer.epochs", "expected int"),
        ("precision=fp64", "precision", "one of 'fp32', 'bf16', 'fp16'"),
        ("model.encoder.name=mlp_encodr", "model.encoder.name", "did you mean 'mlp_encoder'"),
        ("model.encoder.hiden_dim=3", "model.encoder.hiden_dim", "did you mean 'hidden_dim'"),
        ("model.encoder.hidden_dim=3.5", "model.encoder.hidden_dim", "expected int"),
        ("optimizer.options.momentun=0.9", "optimizer.options.momentun", "did you mean 'momentum'"),
        ("ema.schedule=cosin", "ema.schedule", "did you mean 'cosine'"),
        ("views.branches.5.0.max_std=1", "views.branches.5.0.max_std", "not an index"),
    ],
)
def test_validation_errors_name_file_key_and_expectation(tmp_path, override, key, words):
    f = write(tmp_path / "r.yaml", BASE)
    with pytest.raises(RecipeError) as e:
        load_recipe(f, [override])
    msg = str(e.value)
    assert f"key '{key}'" in msg and words in msg
    assert "command line" in msg  # the override is where the bad value came from


def test_error_names_the_file_that_set_the_key(tmp_path):
    write(tmp_path / "base.yaml", textwrap.dedent(BASE) + "seed: zero\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(child)
    assert str(tmp_path / "base.yaml") in str(e.value) and "key 'seed'" in str(e.value)


def test_missing_required_values(tmp_path):
    f = write(tmp_path / "r.yaml", "name: x\n")
    with pytest.raises(RecipeError, match="key 'data': required value missing"):
        load_recipe(f)
    with pytest.raises(RecipeError, match="key 'optimizer.lr': required value missing"):
        load_recipe(write(tmp_path / "r2.yaml", BASE.replace("{name: sgd, lr: 0.1}", "{name: sgd}")))


def test_user_plugin_components_via_imports(tmp_path, monkeypatch):
    """A user's module named in `imports:` registers components; their required parameters are checked."""
    write(
        tmp_path / "my_plugin_ds.py",
        """
        import torch
        from ssl_toolkit.registry import DATASETS

        @DATASETS.register("my_vectors")
        def my_vectors(root: str, n: int = 8):
            \"\"\"Vectors from a user's folder.\"\"\"
            return torch.utils.data.TensorDataset(torch.zeros(n, 16), torch.zeros(n, dtype=torch.long))
    """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    text = textwrap.dedent(BASE).replace("{name: gaussian_clusters, size: 64}", "{name: my_vectors}")
    f = write(tmp_path / "r.yaml", text + "imports: [my_plugin_ds]\n")
    with pytest.raises(RecipeError, match="key 'data.dataset.root': required parameter of dataset 'my_vectors'"):
        load_recipe(f)
    assert load_recipe(f, ["data.dataset.root=/data"]).data.dataset["root"] == "/data"
    with pytest.raises(RecipeError, match="cannot import module 'no_such_plugin'"):
        load_recipe(f, ["imports=[no_such_plugin]"])


def test_missing_file_bad_yaml_and_python_tags_are_refused(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(write(tmp_path / "bad.yaml", "a: [1, 2\n"))
    with pytest.raises(RecipeError, match="Python object tags are not allowed"):
        load_recipe(write(tmp_path / "evil.yaml", "name: !!python/object/apply:os.system ['echo hi']\n"))
    with pytest.raises(RecipeError, match="base recipe 'missing.yaml' not found"):
        load_recipe(write(tmp_path / "c.yaml", "base: missing.yaml\n"))


def test_circular_base_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(RecipeError, match="circular"):
        load_recipe(tmp_path / "a.yaml")


def test_expand_path_only_home_and_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_ROOT", str(tmp_path))
    assert expand_path("$DATA_ROOT/x") == tmp_path / "x"
    assert str(expand_path("~/x")).startswith("/")
    assert str(expand_path("$(rm -rf /)/x")) == "$(rm -rf /)/x"  # never executed


def test_shipped_recipes_all_validate():
    RECIPES = Path(__file__).resolve().parents[1] / "recipes"

    files = sorted(RECIPES.rglob("*.yaml"))
    assert files
    for f in files:
        if "eval" in f.parts:
            continue
        try:
            load_recipe(f, check_files=False)
        except RecipeError as e:  # paper-scale recipes leave the data path (and byola_continue the weights) to the user
            assert ("required parameter" in str(e) or "required: this recipe leaves it to you" in str(e)) and (
                "data.dataset" in str(e) or "model.init_from" in str(e)
            ), f"{f}: {e}"
            continue
        try:  # with the files checked, only data this machine does not have may be missing
            load_recipe(f)
        except RecipeError as e:
            assert "no such file or folder" in str(e) and "'data.dataset." in str(e), f"{f}: {e}"


def test_values_left_required_must_be_given(tmp_path):
    """``???`` (OmegaConf's mandatory value) anywhere after inheritance and overrides is an error naming the key and
    the file that left it; giving the value on the command line or in a derived recipe satisfies it."""
    write(tmp_path / "base.yaml", BASE.replace("lr: 0.1", "lr: '???'"))
    with pytest.raises(RecipeError, match=r"base.yaml: key 'optimizer.lr': required: .*optimizer.lr=\.\.\."):
        load_recipe(tmp_path / "base.yaml")
    assert load_recipe(tmp_path / "base.yaml", ["optimizer.lr=0.5"]).optimizer.lr == 0.5
    child = write(tmp_path / "child.yaml", "base: base.yaml\noptimizer: {lr: 0.2}\n")
    assert load_recipe(child).optimizer.lr == 0.2
    with pytest.raises(RecipeError, match=r"key 'views.branches.1.0.name': required"):
        load_recipe(tmp_path / "base.yaml", ["optimizer.lr=0.5", "views.branches.1.0.name=???"])


@pytest.mark.parametrize(
    "override, interval",
    [
        ("trainer.epochs=0", "[1, inf)"),
        ("trainer.epochs=-1", "[1, inf)"),
        ("trainer.max_steps=-5", "[1, inf)"),
        ("trainer.max_minutes=-1", "[0, inf)"),
        ("trainer.log_every=0", "[1, inf)"),
        ("trainer.checkpoint_every=0", "[1, inf)"),
        ("trainer.grad_accum_steps=0", "[1, inf)"),
        ("trainer.keep_checkpoints=-1", "[0, inf)"),
        ("trainer.collapse_threshold=-0.1", "[0, inf)"),
        ("optimizer.lr=-0.1", "(0, inf)"),
        ("optimizer.lr=0", "(0, inf)"),
        ("optimizer.weight_decay=-1e-6", "[0, inf)"),
        ("ema.tau_base=2", "[0, 1]"),
        ("ema.tau_base=-1", "[0, 1]"),
        ("data.batch_size=0", "[1, inf)"),
        ("data.batch_size=-8", "[1, inf)"),
        ("data.num_workers=-1", "[0, inf)"),
        ("data.prefetch_factor=0", "[1, inf)"),
    ],
)
def test_numeric_keys_outside_their_range_are_refused(tensor_recipe, override, interval):
    key = override.split("=")[0]
    with pytest.raises(RecipeError, match=rf"key '{re.escape(key)}': expected a value in {re.escape(interval)}"):
        load_recipe(tensor_recipe, [override])


def test_range_edges_are_accepted(tensor_recipe):
    r = load_recipe(
        tensor_recipe,
        [
            "ema.tau_base=1",
            "ema.tau_base=0",
            "trainer.keep_checkpoints=0",
            "data.num_workers=0",
            "trainer.max_steps=1",
            "optimizer.lr=1e-9",
        ],
    )
    assert r.ema.tau_base == 0.0 and r.trainer.max_steps == 1


def test_unknown_device_is_a_one_line_error(tensor_recipe, tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssl_toolkit",
            "train",
            str(tensor_recipe),
            "device=banana",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "device: 'banana' is not a device; accepted: auto, cpu, cuda" in done.stderr


def _alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines)


def test_yaml_alias_bomb_is_refused_quickly(tmp_path):
    import time

    bomb = _alias_bomb()  # ~460 bytes that expand to 9**9 ≈ 387 million values
    f = write(tmp_path / "bomb.yaml", "name: bomb\n" + bomb + "\n")
    start = time.perf_counter()
    with pytest.raises(RecipeError, match=r"bomb.yaml: refused: its YAML aliases expand to more than 100,000"):
        load_recipe(f)
    # the same document as the first invalid list item of a valid recipe, and on the command line
    g = write(tmp_path / "g.yaml", BASE)
    with pytest.raises(RecipeError, match="command line: key 'views.branches': refused: its YAML aliases expand"):
        load_recipe(g, ["views.branches=[{" + bomb.replace("\n", ", ") + "}]"])
    with open(g, "a") as handle:
        handle.write(bomb + "\n")
    with pytest.raises(RecipeError, match="g.yaml: refused: its YAML aliases expand"):
        load_recipe(g)
    assert time.perf_counter() - start < 5


def test_self_referencing_yaml_is_refused(tmp_path):
    f = write(tmp_path / "loop.yaml", "name: loop\nviews: &v {branches: [*v]}\n")
    with pytest.raises(RecipeError, match="loop.yaml: refused: the document refers to itself"):
        load_recipe(f)


def test_errors_quote_a_short_form_of_large_values(tmp_path):
    big = "[" + ", ".join(["[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"] * 2000) + "]"  # 20,000 values: under the alias limit
    f = write(tmp_path / "r.yaml", BASE)
    with pytest.raises(RecipeError) as e:
        load_recipe(f, [f"trainer.epochs={big}"])
    assert "key 'trainer.epochs': expected int, got list [[1, 2, 3, 4, 5, 6, ...], [1, 2" in str(e.value)
    assert len(str(e.value)) < 300
    with pytest.raises(RecipeError) as e:
        load_recipe(f, ["model.encoder.norm=" + "x" * 100_000])
    assert len(str(e.value)) < 300 and "..." in str(e.value)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a text recipe: byte"),
        (b"name: x\x00\x00\x00", "not a text recipe: it contains NUL bytes"),
        (b"a: [" * 2000 + b"1" + b"]" * 2000, "refused: nested too deeply"),
    ],
)
def test_binary_and_pathological_files_are_refused(tmp_path, content, words):
    f = tmp_path / "weird.yaml"
    f.write_bytes(content)
    with pytest.raises(RecipeError, match=re.escape(words)) as e:
        load_recipe(f)
    assert str(f.name) in str(e.value)


def test_oversized_and_unreadable_recipe_files(tmp_path, deny_reading):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    with pytest.raises(RecipeError, match="big.yaml: refused: larger than 1 MiB"):
        load_recipe(big)
    with pytest.raises(RecipeError, match="cannot read recipe: Is a directory"):
        load_recipe(tmp_path)
    locked = write(tmp_path / "locked.yaml", BASE)
    deny_reading(locked)
    with pytest.raises(RecipeError, match="locked.yaml: cannot read recipe: Permission denied"):
        load_recipe(locked)

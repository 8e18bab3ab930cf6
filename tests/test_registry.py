import pytest

from ssl_toolkit.recipe import import_components
from ssl_toolkit.registry import ALL_REGISTRIES, Registry, RegistryError


def test_register_build_and_describe():
    reg = Registry("widget")

    @reg.register("square")
    def square(x: int = 2):
        """Squares a number."""
        return x * x

    assert reg.build("square", x=3) == 9
    assert reg.get("square").description == "Squares a number."
    assert reg.get("square").signature_text() == "x=2"
    assert "square" in reg and reg.names() == ["square"]


def test_duplicate_name_raises():
    reg = Registry("widget")
    reg.register("a")(lambda: 1)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a")(lambda: 2)


def test_unknown_name_lists_known_and_closest():
    reg = Registry("widget")
    reg.register("resnet18")(lambda: 1)
    reg.register("resnet50")(lambda: 1)
    with pytest.raises(RegistryError) as e:
        reg.get("resnt18")
    assert "did you mean 'resnet18'" in str(e.value) and "known: resnet18, resnet50" in str(e.value)


def test_unknown_parameter_raises_with_suggestion():
    reg = Registry("widget")
    reg.register("f")(lambda width=1: width)
    with pytest.raises(RegistryError, match="no parameter 'widht'.*did you mean 'width'"):
        reg.build("f", widht=2)


def test_every_registered_component_has_a_description():
    import_components()
    for kind, registry in ALL_REGISTRIES.items():
        for entry in registry:
            assert entry.description, f"{kind} '{entry.name}' needs a docstring"

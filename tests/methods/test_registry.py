"""A new method is one class with ``@register_method``: nothing else needs to change."""

from __future__ import annotations

import pytest
import torch

from bioaug.errors import ConfigError
from bioaug.methods import METHODS, Method, MethodConfig, build_method, method_names
from bioaug.methods.recipe import Recipe
from bioaug.methods.registry import lookup_method, register_method


class _DummyConfig(MethodConfig):
    scale: float = 1.0


def make_dummy_method(name: str = "dummy_ssl") -> type[Method]:
    """A minimal method (mean squared distance of the two views' features)."""

    class Dummy(Method):
        """A test method: pulls the features of two views together."""

        title = "Dummy"
        Config = _DummyConfig
        recipe = Recipe(optimizer="adamw", lr=1e-3, weight_decay=0.0, reference="a test")

        def __init__(self, backbone: torch.nn.Module, config: _DummyConfig) -> None:
            super().__init__(backbone, config)
            self.projector = torch.nn.Identity()

        def training_loss(self, views):
            a, b = (self.backbone(v) for v in views)
            return {"loss": self.config.scale * (a - b).pow(2).mean()}

    Dummy.name = name
    return Dummy


@pytest.fixture
def dummy_method():
    cls = register_method(make_dummy_method())
    yield cls
    METHODS.pop(cls.name)


def test_registering_makes_a_method_buildable(dummy_method, tiny_backbone):
    assert "dummy_ssl" in method_names() and lookup_method("dummy_ssl") is dummy_method
    method = build_method("dummy_ssl", tiny_backbone, scale=2.0)
    views = [torch.rand(4, 2, 6, 6), torch.rand(4, 2, 6, 6)]
    assert method.training_loss(views)["loss"] > 0
    with pytest.raises(ConfigError, match="scal: unknown key"):
        build_method("dummy_ssl", tiny_backbone, scal=2.0)


def test_a_name_cannot_be_taken_twice(dummy_method):
    other = make_dummy_method()
    other.__qualname__ = "Other"
    with pytest.raises(ConfigError, match="'dummy_ssl' is taken"):
        register_method(other)
    bad = make_dummy_method("not a name")
    with pytest.raises(ConfigError, match="must be an identifier"):
        register_method(bad)


def test_unknown_name_lists_the_registered_ones(dummy_method):
    with pytest.raises(ConfigError) as err:
        lookup_method("dumy_ssl")
    assert "did you mean 'dummy_ssl'" in str(err.value)
    assert all(name in str(err.value) for name in METHODS)

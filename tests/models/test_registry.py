"""The registry API others depend on: create / list / get_cfg / register_model."""

from __future__ import annotations

import pytest
import torch

from onebit import models

EXPECTED = {
    "binarynet_mlp",
    "binarynet_cifar",
    "binary_alexnet",
    "xnornet",
    "xnornet_resnet18",
    "bwn_resnet18",
    "wu13",
    "tang_alexnet",
    "binary_resnet_e18",
    "binary_densenet28",
    "binary_densenet37",
    "binary_densenet37_dilated",
    "binary_densenet45",
    "birealnet18",
    "quicknet_small",
    "quicknet",
    "quicknet_large",
    "reactnet_a",
    "ablation_convnet",
}


def test_every_model_of_the_issue_is_registered():
    assert set(models.list()) == EXPECTED
    assert models.list() == sorted(models.list())


def test_list_filters_with_wildcards():
    assert models.list("binary_dense*") == [
        "binary_densenet28",
        "binary_densenet37",
        "binary_densenet37_dilated",
        "binary_densenet45",
    ]
    assert models.list("quicknet*") == ["quicknet", "quicknet_large", "quicknet_small"]
    assert models.list("nothing*") == []


def test_unknown_name_names_close_matches():
    with pytest.raises(ValueError, match="quicknet"):
        models.create("quiknet")
    with pytest.raises(ValueError, match="unknown model"):
        models.get_cfg("resnet50")


def test_cfg_has_the_documented_keys():
    for name in models.list():
        cfg = models.get_cfg(name)
        for key in (
            "input_size",
            "num_classes",
            "mean",
            "std",
            "first_conv",
            "classifier",
            "paper",
            "binary_exceptions",
            "reference",
            "pad_value",
        ):
            assert key in cfg, (name, key)
        assert "source" in cfg["reference"], name
        if cfg.get("dataset") == "imagenet":
            assert cfg["input_size"] == (3, 224, 224) and cfg["num_classes"] == 1000
    assert models.get_cfg("binarynet_cifar")["input_size"] == (3, 32, 32)
    assert models.get_cfg("binarynet_mlp")["input_size"] == (1, 28, 28)
    # a copy: callers cannot corrupt the registry
    models.get_cfg("quicknet")["input_size"] = None
    assert models.get_cfg("quicknet")["input_size"] == (3, 224, 224)


def test_first_conv_and_classifier_name_real_modules(small_model):
    for name in models.list():
        cfg = models.get_cfg(name)
        mods = dict(small_model(name).named_modules())
        assert cfg["first_conv"] in mods, name
        assert cfg["classifier"] in mods, name


def test_none_kwargs_are_dropped_and_defaults_kept():
    m = models.create("binarynet_cifar", num_classes=None, in_chans=None, input_size=None, width=0.25)
    assert m(torch.randn(2, 3, 32, 32)).shape == (2, 10)  # CIFAR default: 10 classes
    m = models.create("quicknet_small", num_classes=7, input_size=32, in_chans=1)
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    assert m.default_cfg["input_size"] == (3, 224, 224) and m.model_name == "quicknet_small"


def test_unknown_kwarg_is_a_type_error_naming_the_model():
    with pytest.raises(TypeError, match="quicknet"):
        models.create("quicknet", widht=2)


def test_register_model_maps_function_name():
    import onebit.models.bethge as fam

    assert models.create.__module__ == "onebit.models._registry"
    assert fam.binary_densenet28.default_cfg["reference"]["params_total"] == 5_150_504

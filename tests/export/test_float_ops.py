"""The float ops of issue 16 exported from PyTorch and run in the engine: GELU (erf and tanh), SiLU,
Hardswish, Hardsigmoid, Sigmoid, Tanh, GroupNorm, LayerNorm (rows and conv channels), nearest and
bilinear upsampling, each from its module and its functional form; and the errors for what still
does not export, naming the module path and the op."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import onebit
from onebit.export import ExportError
from onebit.export.driver import lower
from onebit.runtime.format import read_model_file
from onebit.runtime.model import load
from onebit.runtime.reference import decode_tensors, run_reference

# Float ops are compared with PyTorch within 1e-5 relative. Where the true value is tiny
# (GELU's negative tail, values near zero after a normalization) PyTorch's own float32
# result is only good to about 1e-7 absolute, hence the small absolute slack.
RTOL, ATOL = 1e-5, 1e-6


def _export_run(tmp_path, model: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, dict]:
    model.eval()
    path = tmp_path / "m.onebit"
    onebit.export(model, x[:1], path)
    with torch.no_grad():
        want = model(x).numpy()
    got = load(path, num_threads=2).run(x.numpy())
    mf = read_model_file(path)
    ref = run_reference(mf.meta, decode_tensors(mf.meta, mf.tensors), x.numpy())
    np.testing.assert_allclose(ref, want, rtol=1e-4, atol=1e-5)  # the reference semantics agree too
    return got, want, mf.meta


def _ops(meta: dict) -> list[str]:
    return [n["op"] for n in meta["nodes"]]


class Fn(nn.Module):
    """A module whose forward is one function call on its input."""

    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _wide(shape, seed=0) -> torch.Tensor:
    """Inputs from -12 to 12 (tails included) with many values near 0 and near the kinks at +-3."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g) * 4
    x.view(-1)[:11] = torch.tensor([-12.0, -9.0, -3.0, 0.0, 3.0, 1e-4, -1e-4, -5.3, -5.8, -88.5, -89.0])
    return x


# Where PyTorch's float32 GELU has its last negative values, its own erf / tanh decides whether
# 1 + erf(x / sqrt 2) rounds to 0, and its vectorized and scalar loops (a tensor's last
# elements) disagree: there the sign of PyTorch's result is noise.
_SIGN_NOISE = {"gelu": (-5.56, -5.48), "gelu_tanh": (-5.2, -5.0)}


ACTIVATIONS = [
    ("gelu", nn.GELU(), lambda x: F.gelu(x)),
    ("gelu_tanh", nn.GELU(approximate="tanh"), lambda x: F.gelu(x, approximate="tanh")),
    ("silu", nn.SiLU(), F.silu),
    ("hardswish", nn.Hardswish(), F.hardswish),
    ("hardsigmoid", nn.Hardsigmoid(), F.hardsigmoid),
    ("sigmoid", nn.Sigmoid(), torch.sigmoid),
    ("tanh", nn.Tanh(), torch.tanh),
    ("sigmoid", nn.Sigmoid(), lambda x: x.sigmoid()),
    ("tanh", nn.Tanh(), lambda x: x.tanh()),
]


@pytest.mark.parametrize(
    "kind,module,fn", ACTIVATIONS, ids=[f"{a[0]}-{i}" for i, a in enumerate(ACTIVATIONS)]
)
@pytest.mark.parametrize("form", ["module", "function"])
@pytest.mark.parametrize("shape", [(3, 6, 7, 5), (4, 37)])
def test_activation_matches_torch(tmp_path, kind, module, fn, form, shape):
    model = nn.Sequential(module) if form == "module" else Fn(fn)
    got, want, meta = _export_run(tmp_path, model, _wide(shape))
    assert _ops(meta) == ["activation"] and meta["nodes"][0]["attrs"] == {"kind": kind}
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
    # a sign after the activation (+1 where y >= 0, -0 included) agrees with PyTorch's
    x = _wide(shape).numpy()
    lo, hi = _SIGN_NOISE.get(kind, (0.0, 0.0))
    clear = ~((x > lo) & (x < hi))
    np.testing.assert_array_equal((got >= 0)[clear], (want >= 0)[clear])


CLIPS = [
    (nn.ReLU6(), F.relu6, (0.0, 6.0)),
    (nn.Hardtanh(-2.0, 0.5), lambda x: F.hardtanh(x, -2.0, 0.5), (-2.0, 0.5)),
    (nn.Hardtanh(), lambda x: torch.clamp(x, -1, 1), (-1.0, 1.0)),
    (nn.Hardtanh(0.25, 3.0), lambda x: x.clamp(0.25, 3.0), (0.25, 3.0)),
    (nn.Hardtanh(-3.0, 3.0), lambda x: torch.clip(x, min=-3.0, max=3.0), (-3.0, 3.0)),
]


@pytest.mark.parametrize("module,fn,bounds", CLIPS, ids=[f"clip{i}" for i in range(len(CLIPS))])
@pytest.mark.parametrize("form", ["module", "function"])
def test_clip_forms_match_torch(tmp_path, module, fn, bounds, form):
    model = nn.Sequential(module) if form == "module" else Fn(fn)
    got, want, meta = _export_run(tmp_path, model, _wide((2, 3, 4, 5)))
    assert _ops(meta) == ["clip"] and meta["nodes"][0]["attrs"] == {"min": bounds[0], "max": bounds[1]}
    np.testing.assert_array_equal(got, want)


def test_one_sided_clamp(tmp_path):
    got, want, meta = _export_run(tmp_path, Fn(lambda x: x.clamp(min=0.5)), _wide((2, 9)))
    assert meta["nodes"][0]["attrs"]["min"] == 0.5 and meta["nodes"][0]["attrs"]["max"] > 1e38
    np.testing.assert_array_equal(got, want)


class ConvAct(nn.Module):
    """conv -> BN -> activation -> conv -> functional activation: the ops between real layers."""

    def __init__(self, act: nn.Module, fn) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.act = act
        self.conv2 = nn.Conv2d(16, 8, 1)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.conv2(self.act(self.bn(self.conv1(x)))))


@pytest.mark.parametrize("kind,module,fn", ACTIVATIONS[:7], ids=[a[0] for a in ACTIVATIONS[:7]])
def test_activation_between_convs(tmp_path, kind, module, fn):
    torch.manual_seed(0)
    got, want, meta = _export_run(tmp_path, ConvAct(module, fn), torch.randn(2, 3, 9, 9) * 2)
    assert _ops(meta).count("activation") == 2
    # the convs' float sums differ from torch's by rounding, so the tolerance is a little wider
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


class GroupNormNet(nn.Module):
    def __init__(self, groups: int, affine: bool, functional: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.norm = nn.GroupNorm(groups, 12, eps=1e-4, affine=affine)
        self.functional = functional
        if affine:
            with torch.no_grad():
                self.norm.weight.uniform_(-1.5, 1.5)
                self.norm.bias.uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x) + 3.0  # a mean far from 0
        if self.functional:
            return F.group_norm(x, self.norm.num_groups, self.norm.weight, self.norm.bias, self.norm.eps)
        return self.norm(x)


@pytest.mark.parametrize("groups", [1, 3, 12])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("functional", [False, True])
def test_group_norm_matches_torch(tmp_path, groups, affine, functional):
    torch.manual_seed(groups)
    got, want, meta = _export_run(tmp_path, GroupNormNet(groups, affine, functional), torch.randn(3, 3, 7, 6))
    node = next(n for n in meta["nodes"] if n["op"] == "group_norm")
    assert node["attrs"] == {"groups": groups, "eps": 1e-4}
    # The conv's float sums round differently from torch's (its kernel and summation order
    # depend on the CPU's instruction set), and normalizing divides that rounding error of
    # values near 3.0 by the group's std: scale the tolerance by the output's magnitude, as for
    # the activations after convs. (A biased/unbiased variance swap or a wrong
    # group still misses it by two orders of magnitude.)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_group_norm_on_a_dense_output(tmp_path):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 20), nn.GroupNorm(4, 20))
    got, want, meta = _export_run(tmp_path, model, torch.randn(5, 3, 4, 4))
    assert "group_norm" in _ops(meta)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


class RowLayerNorm(nn.Module):
    def __init__(self, functional: bool, affine: bool = True) -> None:
        super().__init__()
        self.fc = nn.Linear(30, 24)
        self.norm = nn.LayerNorm(24, eps=1e-6, elementwise_affine=affine)
        self.functional = functional
        if affine:
            with torch.no_grad():
                self.norm.weight.uniform_(0.5, 1.5)
                self.norm.bias.uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc(x)
        if self.functional:
            return F.layer_norm(x, (24,), self.norm.weight, self.norm.bias, 1e-6)
        return self.norm(x)


@pytest.mark.parametrize("functional", [False, True])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_rows_matches_torch(tmp_path, functional, affine):
    torch.manual_seed(2)
    got, want, meta = _export_run(tmp_path, RowLayerNorm(functional, affine), torch.randn(6, 30))
    assert "layer_norm" in _ops(meta)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_layer_norm_after_flatten_permutes_its_affine(tmp_path):
    """LayerNorm on a flattened NHWC value: the engine's channel order differs from torch's."""
    torch.manual_seed(3)
    norm = nn.LayerNorm(5 * 3 * 4)
    with torch.no_grad():
        norm.weight.uniform_(-1, 1)
        norm.bias.uniform_(-1, 1)
    model = nn.Sequential(nn.Conv2d(2, 5, 1), nn.Flatten(), norm, nn.Linear(60, 7))
    got, want, _ = _export_run(tmp_path, model, torch.randn(4, 2, 3, 4))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


class ChannelLayerNorm(nn.Module):
    """ConvNeXt's form: permute to channels-last, nn.LayerNorm(C), GELU, permute back."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.norm = nn.LayerNorm(16, eps=1e-6)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).permute(0, 2, 3, 1)
        return F.gelu(self.norm(x)).permute(0, 3, 1, 2)


class LayerNorm2d(nn.LayerNorm):
    """timm's LayerNorm2d: F.layer_norm over channels between two permutes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1).contiguous()
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return torch.permute(x, (0, 3, 1, 2))


@pytest.mark.parametrize("form", ["module", "function"])
def test_layer_norm_over_conv_channels_matches_torch(tmp_path, form):
    torch.manual_seed(4)
    if form == "module":
        model: nn.Module = ChannelLayerNorm()
    else:
        model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), LayerNorm2d(16))
        with torch.no_grad():
            model[1].weight.uniform_(0.5, 1.5)
            model[1].bias.uniform_(-1, 1)
    got, want, meta = _export_run(tmp_path, model, torch.randn(2, 3, 6, 5))
    assert "layer_norm" in _ops(meta)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


UPSAMPLES = [
    ("nearest x2", nn.Upsample(scale_factor=2), lambda x: F.interpolate(x, scale_factor=2)),
    (
        "nearest x1.5",
        nn.Upsample(scale_factor=1.5),
        lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest"),
    ),
    ("nearest (2, 3)", nn.Upsample(scale_factor=(2, 3)), lambda x: F.interpolate(x, scale_factor=(2, 3))),
    ("nearest size", nn.Upsample(size=(11, 4)), lambda x: F.interpolate(x, size=(11, 4))),
    ("nearest down", nn.Upsample(scale_factor=0.5), lambda x: F.interpolate(x, scale_factor=0.5)),
    ("nearest x1.05", nn.Upsample(scale_factor=1.05), lambda x: F.interpolate(x, scale_factor=1.05)),
    (
        "nearest recompute",
        nn.Upsample(scale_factor=1.7, recompute_scale_factor=True),
        lambda x: F.interpolate(x, scale_factor=1.7, recompute_scale_factor=True),
    ),
    (
        "nearest 2d",
        nn.UpsamplingNearest2d(scale_factor=3),
        lambda x: F.interpolate(x, scale_factor=3, mode="nearest"),
    ),
    (
        "nearest-exact x1.5",
        nn.Upsample(scale_factor=1.5, mode="nearest-exact"),
        lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest-exact"),
    ),
    (
        "nearest-exact size",
        nn.Upsample(size=(12, 3), mode="nearest-exact"),
        lambda x: F.interpolate(x, size=(12, 3), mode="nearest-exact"),
    ),
    (
        "nearest-exact x3.3",
        nn.Upsample(scale_factor=3.3, mode="nearest-exact"),
        lambda x: F.interpolate(x, scale_factor=3.3, mode="nearest-exact"),
    ),
    (
        "bilinear x2",
        nn.Upsample(scale_factor=2, mode="bilinear"),
        lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
    ),
    (
        "bilinear x1.7",
        nn.Upsample(scale_factor=1.7, mode="bilinear"),
        lambda x: F.interpolate(x, scale_factor=1.7, mode="bilinear"),
    ),
    (
        "bilinear size",
        nn.Upsample(size=(13, 8), mode="bilinear"),
        lambda x: F.interpolate(x, size=(13, 8), mode="bilinear"),
    ),
    (
        "bilinear align",
        nn.Upsample(scale_factor=2.5, mode="bilinear", align_corners=True),
        lambda x: F.interpolate(x, scale_factor=2.5, mode="bilinear", align_corners=True),
    ),
    (
        "bilinear align size",
        nn.UpsamplingBilinear2d(size=(1, 9)),
        lambda x: F.interpolate(x, size=(1, 9), mode="bilinear", align_corners=True),
    ),
    (
        "bilinear down",
        nn.Upsample(scale_factor=0.6, mode="bilinear"),
        lambda x: F.interpolate(x, scale_factor=0.6, mode="bilinear"),
    ),
    (
        "bilinear same size",
        nn.Upsample(size=(5, 7), mode="bilinear"),
        lambda x: F.interpolate(x, size=(5, 7), mode="bilinear"),
    ),
]


@pytest.mark.parametrize("name,module,fn", UPSAMPLES, ids=[u[0] for u in UPSAMPLES])
@pytest.mark.parametrize("form", ["module", "function"])
def test_upsample_matches_torch(tmp_path, name, module, fn, form):
    model = nn.Sequential(module) if form == "module" else Fn(fn)
    x = torch.randn(2, 3, 5, 7)
    got, want, meta = _export_run(tmp_path, model, x)
    assert _ops(meta) == ["upsample"]
    assert got.shape == want.shape
    if name.startswith("nearest"):
        np.testing.assert_array_equal(got, want)  # a copy: same source pixels as torch, bit for bit
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


class Decoder(nn.Module):
    """A small segmentation-style net: conv, GroupNorm, SiLU, upsample, concat, LayerNorm2d, Hardswish."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.act = nn.SiLU()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.ln = LayerNorm2d(11)
        self.head = nn.Conv2d(11, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(self.act(self.gn(self.down(x))))
        y = self.ln(torch.cat([y, x], 1))
        return F.hardsigmoid(self.head(F.hardswish(y)))


def test_decoder_net_matches_torch(tmp_path):
    torch.manual_seed(5)
    got, want, meta = _export_run(tmp_path, Decoder(), torch.randn(2, 3, 12, 10))
    assert {"group_norm", "activation", "upsample", "layer_norm"} <= set(_ops(meta))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


class Holder(nn.Module):
    """blocks.0 is a conv, blocks.1 calls `fn` in its forward."""

    def __init__(self, fn=None, module: nn.Module | None = None) -> None:
        super().__init__()
        self.blocks = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), Fn(fn) if module is None else module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


@pytest.mark.parametrize(
    "model,message",
    [
        (
            Holder(module=nn.Upsample(scale_factor=2, mode="bicubic")),
            r"module 'blocks\.1' \(Upsample\).*'bicubic'",
        ),
        (
            Holder(lambda x: F.interpolate(x, scale_factor=2, mode="area")),
            r"module 'blocks\.1' \(Fn\).*'area'",
        ),
        (
            Holder(lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", antialias=True)),
            r"module 'blocks\.1' \(Fn\).*antialias",
        ),
        (
            Holder(module=nn.LayerNorm([4, 8, 8])),
            r"module 'blocks\.1' \(LayerNorm\).*layer_norm over \[4, 8, 8\]",
        ),
        (Holder(module=nn.Mish()), r"'blocks\.1'.*Mish"),
        (Holder(F.softplus), r"module 'blocks\.1' \(Fn\): cannot export function F\.softplus"),
        (Holder(lambda x: x.permute(0, 3, 1, 2)), r"module 'blocks\.1' \(Fn\): permute\(0, 3, 1, 2\)"),
        (Holder(lambda x: torch.sigmoid(x).exp()), r"module 'blocks\.1' \(Fn\): cannot export tensor method"),
        (
            nn.Sequential(
                nn.Flatten(), nn.Linear(3 * 8 * 8, 12), nn.Unflatten(1, (12, 1, 1)), nn.GroupNorm(3, 12)
            ),
            r"Unflatten",
        ),
    ],
    ids=["bicubic", "area", "antialias", "layernorm-chw", "mish", "softplus", "permute", "exp", "unflatten"],
)
def test_what_does_not_export_names_module_and_op(model, message):
    with pytest.raises(ExportError, match=message):
        lower(model, torch.randn(1, 3, 8, 8))


def test_permuted_output_and_other_consumers_of_a_permute_are_refused():
    with pytest.raises(
        ExportError, match=r"output is permuted to \(N, H, W, C\) \(module 'blocks\.1' \(Fn\)\)"
    ):
        lower(Holder(lambda x: x.permute(0, 2, 3, 1)), torch.randn(1, 3, 8, 8))
    model = nn.Sequential(Fn(lambda x: x.permute(0, 2, 3, 1)), nn.Conv2d(8, 4, 1))
    with pytest.raises(ExportError, match=r"module '0' \(Fn\): a tensor permuted to \(N, H, W, C\)"):
        lower(model, torch.randn(1, 3, 8, 8))
    with pytest.raises(ExportError, match=r"permute\(0, 1, 3, 2\) of x.permute\(0, 2, 3, 1\)"):
        lower(Fn(lambda x: x.permute(0, 2, 3, 1).permute(0, 1, 3, 2)), torch.randn(1, 3, 8, 8))


def test_group_norm_groups_on_flattened_value_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Flatten(), nn.GroupNorm(2, 4 * 64))
    with pytest.raises(ExportError, match=r"module '2' \(GroupNorm\).*flattened"):
        lower(model, torch.randn(1, 3, 8, 8))


def test_float_ops_are_thread_safe_and_thread_count_independent(tmp_path):
    """One loaded model run from several threads at once, with 1 and 2 kernel threads: the same bits."""
    import threading

    torch.manual_seed(6)
    path = tmp_path / "d.onebit"
    onebit.export(Decoder().eval(), torch.randn(1, 3, 64, 48), path)  # values above one task of 16K floats
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((1 + i % 3, 3, 64, 48)).astype(np.float32) for i in range(12)]
    one = load(path, num_threads=1)
    expected = [one.run(x).view(np.uint32) for x in inputs]
    shared = load(path, num_threads=2)
    failures: list[str] = []

    def worker(t: int) -> None:
        for k in range(30):
            j = (t * 5 + k) % len(inputs)
            if not np.array_equal(shared.run(inputs[j]).view(np.uint32), expected[j]):
                failures.append(f"thread {t} call {k}")

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not failures, failures[:5]


class BinaryWithFloatOps(nn.Module):
    """Binary convs between the new float ops: stem, GroupNorm, sign, bconv, BN, GELU, upsample,
    sign, bconv, LayerNorm over channels, Hardswish, pool, dense."""

    def __init__(self) -> None:
        super().__init__()
        from onebit.nn import QuantConv2d

        from .conftest import BIN

        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.gn = nn.GroupNorm(4, 16)
        self.b1 = QuantConv2d(16, 32, 3, stride=2, padding=1, bias=False, pad_value=1.0, **BIN)
        self.bn1 = nn.BatchNorm2d(32)
        self.act = nn.GELU()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.b2 = QuantConv2d(32, 24, 3, padding=1, bias=False, pad_value=-1.0, **BIN)
        self.ln = LayerNorm2d(24)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b1(self.gn(self.stem(x)))
        x = self.b2(self.up(self.act(self.bn1(x))))
        x = F.hardswish(self.ln(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def test_binary_net_with_float_ops_matches_torch(tmp_path):
    from .conftest import randomize_bn

    torch.manual_seed(7)
    model = randomize_bn(BinaryWithFloatOps()).eval()
    x = torch.randn(32, 3, 12, 12)
    got, want, meta = _export_run(tmp_path, model, x)
    ops = _ops(meta)
    assert ops.count("bconv2d") == 2 and {"group_norm", "activation", "upsample", "layer_norm"} <= set(ops)
    assert "affine" not in ops  # the BN after the first binary conv folded into it
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert (got.argmax(1) == want.argmax(1)).all()

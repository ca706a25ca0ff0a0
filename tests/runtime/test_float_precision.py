"""The load option float_precision: the float conv2d / dense layers in bf16 or int8 (AVX512 or emulated).

What is checked:

* each bf16 layer against a numpy/torch reference that rounds its input and weights to bf16
  (round to nearest even, as ``vcvtne2ps2bf16`` does) and sums in float64, within the bound of
  fp32 summation: ``|engine - reference| <= (K + 2) * 2**-24 * (sum_k |a_k w_k| + |bias|)``
  (K products and at most two more additions, each rounding by at most 2**-24 relative; the
  products themselves are exact in fp32). Convolutions with padding, stride, dilation, groups,
  odd shapes, output channels that are not a multiple of 32, M tails, K tails (odd K, K past
  one 256-value block); dense layers at batch 1 and above 4;
* ``bf16`` (AVX512-BF16) against ``bf16_emulated`` (portable), bit for bit, on layers and on
  whole zoo models, also when the instruction set is switched after the load;
* the whole binary_resnet_e18 in bf16 against fp32;
* errors: a bad precision string, ``bf16`` without AVX512_BF16 or under a forced non-AVX-512
  path (in-process and through ``ONEBIT_ISA``); the scratch counted against the memory cap.

* int8: each layer bit for bit against a numpy model of its quantization (kernels/i8gemm.h:
  weights per output channel, activations per sample with a zero point, exact integer sums,
  fp32 dequantization), and within the quantization error of an fp64 reference; the
  AVX512-VNNI kernel against its emulation.

Tests that run an AVX-512 kernel skip, naming the feature, on a CPU without it; the
emulation tests run everywhere. (The C++ kernels are also checked bit for bit against a
scalar model of the instructions by tests/csrc/test_kernels.cc.)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

from onebit import _C
from onebit.runtime import FLOAT_PRECISIONS, load
from onebit.runtime.format import read_model_file

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import onebit  # noqa: E402

HAS_BF16 = "avx512bf16" in _C.cpu_features().split() and _C.isa_supported("avx512")
needs_bf16 = pytest.mark.skipif(
    not HAS_BF16, reason=f"CPU lacks AVX512_BF16 (has: {_C.cpu_features()}): the bf16 kernel cannot run"
)
#: the precisions that run here: the emulation always, the AVX512-BF16 kernel where the CPU has it
PRECISIONS = ["bf16_emulated", pytest.param("bf16", marks=needs_bf16)]
HAS_VNNI = "avx512vnni" in _C.cpu_features().split() and _C.isa_supported("avx512")
needs_vnni = pytest.mark.skipif(
    not HAS_VNNI, reason=f"CPU lacks AVX512_VNNI (has: {_C.cpu_features()}): the int8 kernel cannot run"
)
HAS_AMX = _C.isa_supported("amx")
needs_amx = pytest.mark.skipif(
    not HAS_AMX, reason=f"no AMX-INT8 this process may use (has: {_C.cpu_features()}): no amx path"
)
#: "int8-amx": float_precision "int8" on the amx path (the AMX-INT8 tile kernel), which is opt-in
INT8 = ["int8_emulated", pytest.param("int8", marks=needs_vnni), pytest.param("int8-amx", marks=needs_amx)]


@contextlib.contextmanager
def int8_path(precision: str):
    """Runs the block under the instruction set a PRECISIONS / INT8 entry names; yields the load option."""
    before = _C.active_isa()
    if precision == "int8-amx":
        _C.set_isa("amx")
    try:
        yield precision.removesuffix("-amx")
    finally:
        _C.set_isa(before)


def bf16_round(x: np.ndarray) -> np.ndarray:
    """float32 -> the nearest bf16 (ties to even) as float32; subnormals to signed zero, NaN quiet."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    h = np.where((u & 0x7F800000) == 0, (u >> 16) & 0x8000, rounded)
    h = np.where((u & 0x7FFFFFFF) > 0x7F800000, (u >> 16) | 0x40, h)
    return (h.astype(np.uint32) << 16).view(np.float32)


def split_bf16(x: np.ndarray) -> np.ndarray:
    """bf16(x) + bf16(x - bf16(x)) in float64: how a layer with +-1 weights takes its input in bf16."""
    hi = bf16_round(x)
    return hi.astype(np.float64) + bf16_round(x.astype(np.float32) - hi).astype(np.float64)


def export(tmp_path, model: nn.Module, x: torch.Tensor, name: str = "m.onebit") -> str:
    path = str(tmp_path / name)
    onebit.export(model.eval(), x[:1], path)
    return path


def check_within_bound(got: np.ndarray, ref: np.ndarray, abs_terms: np.ndarray, k: int) -> None:
    bound = (k + 2) * 2.0**-24 * abs_terms
    err = np.abs(got.astype(np.float64) - ref)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), (
        f"|engine - reference| = {err[worst]:.3g} above the bound {bound[worst]:.3g} at {worst} (K = {k})"
    )


def test_bf16_round_is_the_instructions_rounding():
    x = np.array(
        [1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -0.0, 1e-39, -1e-40, 3.4e38, np.inf, np.nan],
        np.float32,
    )
    got = bf16_round(x)
    assert got[0] == 1.0 and got[1] == 1.0 and got[2] == 1 + 4 * 2**-8 and got[3] == 1 + 2**-7
    assert np.signbit(got[4]) and got[5] == 0 and np.signbit(got[6]) and got[6] == 0
    assert np.isinf(got[7]) and np.isinf(got[8]) and np.isnan(got[9])


#: (in channels, out channels, kernel, stride, padding, dilation, groups, H, W, batch)
CONVS = {
    "stem 7x7/2 3->64 (K=147)": (3, 64, 7, 2, 3, 1, 1, 33, 30, 1),
    "1x1/2 shortcut 64->128": (64, 128, 1, 2, 0, 1, 1, 14, 14, 2),
    "1x1/1 direct GEMM, N=33": (40, 33, 1, 1, 0, 1, 1, 5, 7, 3),
    "3x3 dilation 2, odd K=45, N=17": (5, 17, 3, 1, 2, 2, 1, 11, 9, 2),
    "3x3 K=369 > one block, N=70": (41, 70, 3, 1, 1, 1, 1, 6, 5, 1),
    "5x5/2 pad 1, N=1": (2, 1, 5, 2, 1, 1, 1, 10, 13, 2),
    "3x3 groups 2": (8, 12, 3, 1, 1, 1, 2, 7, 7, 2),
    "1x1 output 1x1": (3, 40, 3, 1, 0, 1, 1, 3, 3, 5),
    # >= 32768 floats a sample: its range is found in one chunk per thread
    "stem 7x7/2 on 112x105, ranges in chunks": (3, 16, 7, 2, 3, 1, 1, 112, 105, 2),
    "1x1 on 24x23x64, ranges in chunks": (64, 24, 1, 1, 0, 1, 1, 24, 23, 1),
}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", list(CONVS), ids=list(CONVS))
def test_bf16_conv2d_within_the_bound_of_a_rounded_reference(tmp_path, case, precision):
    cin, cout, k, s, pad, dil, groups, h, w, n = CONVS[case]
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, s, pad, dil, groups=groups, bias=True)
    x = torch.randn(n, cin, h, w)
    m = load(export(tmp_path, nn.Sequential(conv), x), num_threads=2, float_precision=precision)
    assert m.float_precision == precision
    assert [r["precision"] for r in m.describe() if r["op"] == "conv2d"] == [precision]
    got = m.run(x.numpy())
    xb = torch.from_numpy(bf16_round(x.numpy())).double()
    wb = torch.from_numpy(bf16_round(conv.weight.detach().numpy())).double()
    b = conv.bias.detach().double()
    args = dict(stride=s, padding=pad, dilation=dil, groups=groups)
    ref = F.conv2d(xb, wb, b, **args).numpy()
    abs_terms = (F.conv2d(xb.abs(), wb.abs(), b.abs(), **args)).numpy()
    check_within_bound(got, ref, abs_terms, k * k * cin // groups)
    # and it is not fp32 by accident: the rounding shows
    want32 = conv(x).detach().numpy()
    assert not np.array_equal(got, want32)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    ("batch", "k", "n"), [(1, 512, 1000), (1, 37, 10), (3, 600, 33), (5, 37, 10), (9, 257, 70)]
)
def test_bf16_dense_within_the_bound_of_a_rounded_reference(tmp_path, batch, k, n, precision):
    torch.manual_seed(1)
    fc = nn.Linear(k, n)
    x = torch.randn(batch, k)
    m = load(export(tmp_path, nn.Sequential(fc), x), num_threads=2, float_precision=precision)
    got = m.run(x.numpy())
    xb = bf16_round(x.numpy()).astype(np.float64)
    wb = bf16_round(fc.weight.detach().numpy()).astype(np.float64)
    b = fc.bias.detach().numpy().astype(np.float64)
    check_within_bound(got, xb @ wb.T + b, np.abs(xb) @ np.abs(wb).T + np.abs(b), k)


def _mult_and_bias(path: str, op: str) -> tuple[np.ndarray, np.ndarray]:
    """The multiplier and bias the file holds for its first `op` node (BatchNorm folded in)."""
    f = read_model_file(path)
    node = next(n for n in f.nodes if n["op"] == op)
    assert node["attrs"].get("binary_weight") is True
    return (f.tensors[node["params"][k]].astype(np.float64) for k in ("multiplier", "bias"))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_bf16_binary_weight_layers_keep_their_weights_exact(tmp_path, precision):
    """Float input, +-1 weights times a per-channel multiplier (BinaryNet's first layers): under
    bf16 the +-1 weights stay exact, the multiplier scales the fp32 sums, and each input enters as
    two bf16 parts, bf16(x) + bf16(x - bf16(x)) (~16 significant bits), against the same weight
    (the BatchNorm after the conv folds into the multiplier)."""
    torch.manual_seed(2)
    bwn = dict(weight_quantizer="ste_sign", weight_constraint="weight_clip", scaling="channel")
    conv = onebit.nn.QuantConv2d(3, 20, 3, padding=1, bias=False, **bwn)
    bn = nn.BatchNorm2d(20)
    bn.running_mean.uniform_(-0.5, 0.5)
    bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 3, 9, 10)
    path = export(tmp_path, nn.Sequential(conv, bn), x)
    mult, bias = (v.reshape(1, -1, 1, 1) for v in _mult_and_bias(path, "conv2d"))
    signs = torch.sign(conv.weight.detach()).double()
    xb = torch.from_numpy(split_bf16(x.numpy()))
    ref = F.conv2d(xb, signs, padding=1).numpy() * mult + bias
    abs_terms = F.conv2d(xb.abs(), signs.abs(), padding=1).numpy() * np.abs(mult) + np.abs(bias)
    got = load(path, float_precision=precision).run(x.numpy())
    check_within_bound(got, ref, abs_terms, 2 * 27)
    # nearly fp32: far closer than rounding the input once to bf16 would be
    ref32 = F.conv2d(x.double(), signs, padding=1).numpy() * mult + bias
    assert np.max(np.abs(got - ref32)) < 2**-14 * np.max(np.abs(ref32))

    fc = onebit.nn.QuantLinear(37, 11, **bwn)
    xd = torch.randn(5, 37)
    path = export(tmp_path, nn.Sequential(fc), xd, "fc.onebit")
    mult, bias = _mult_and_bias(path, "dense")
    sd = torch.sign(fc.weight.detach()).double().numpy()
    xdb = split_bf16(xd.numpy())
    ref = (xdb @ sd.T) * mult + bias
    abs_terms = (np.abs(xdb) @ np.abs(sd).T) * np.abs(mult) + np.abs(bias)
    check_within_bound(load(path, float_precision=precision).run(xd.numpy()), ref, abs_terms, 2 * 37)


class _ConvAddRelu(nn.Module):
    """relu(conv1(x) + conv2(x)): the exporter fuses the add and the relu into a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(5, 24, 3, padding=1)
        self.c2 = nn.Conv2d(5, 24, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.c1(x) + self.c2(x))


@pytest.mark.parametrize("precision", [*PRECISIONS, *INT8])
def test_fused_residual_add_and_relu(tmp_path, precision):
    """A conv with the following add and relu fused into it applies them in every precision: the
    fused model gives the bits of the same two convs, add and relu run as separate ops."""
    with int8_path(precision) as prec:
        _check_fused_residual_add_and_relu(tmp_path, prec)


def _check_fused_residual_add_and_relu(tmp_path, precision: str) -> None:
    torch.manual_seed(3)
    model = _ConvAddRelu().eval()
    x = torch.randn(2, 5, 9, 8)
    path = export(tmp_path, model, x)
    fused = load(path, float_precision=precision)
    nodes = [n["op"] for n in fused.meta["nodes"]]
    assert nodes.count("add") == 0 and nodes.count("relu") == 0 and nodes.count("conv2d") == 2, nodes
    paths = [
        export(tmp_path, nn.Sequential(c), x, f"{name}.onebit")
        for name, c in (("c1", model.c1), ("c2", model.c2))
    ]
    parts = [load(p, float_precision=precision).run(x.numpy()) for p in paths]
    s = parts[0] + parts[1]
    want = np.where((s > 0) | np.isnan(s), s, np.float32(0))
    np.testing.assert_array_equal(fused.run(x.numpy()).view(np.uint32), want.view(np.uint32))


def _small_net() -> nn.Module:
    """Every float layer kind: a stem, a 1x1 float shortcut, a depthwise conv (stays fp32), a dense."""
    bin_conv = dict(
        input_quantizer="ste_sign",
        weight_quantizer="ste_sign",
        weight_constraint="weight_clip",
        pad_value=1.0,
        bias=False,
    )

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 24, 5, 2, 2), nn.BatchNorm2d(24), nn.ReLU())
            self.dw = nn.Conv2d(24, 24, 3, padding=1, groups=24)
            self.body = onebit.nn.QuantConv2d(24, 40, 3, stride=2, padding=1, **bin_conv)
            self.bn = nn.BatchNorm2d(40)
            self.short = nn.Conv2d(24, 40, 1, stride=2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(40, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.stem(x)
            x = self.dw(x)
            x = self.bn(self.body(x)) + self.short(x)
            return self.fc(torch.flatten(self.pool(x), 1))

    return Net().eval()


def test_precision_is_reported_per_layer(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    path = export(tmp_path, _small_net(), x)
    assert load(path).float_precision == "fp32"
    rows = load(path, float_precision="bf16_emulated").describe()
    by_source = {r["source"]: r["precision"] for r in rows if r["op"] in ("conv2d", "dense")}
    assert by_source == {
        "stem.0": "bf16_emulated",
        "dw": "fp32",
        "short": "bf16_emulated",
        "fc": "bf16_emulated",
    }
    assert all(r["precision"] == "" for r in rows if r["op"] not in ("conv2d", "dense"))
    assert FLOAT_PRECISIONS == ("fp32", "bf16", "bf16_emulated", "int8", "int8_emulated")


def test_fp32_is_the_default_and_unchanged(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(3, 3, 16, 16)
    path = export(tmp_path, _small_net(), x)
    default, explicit = load(path, num_threads=2), load(path, num_threads=2, float_precision="fp32")
    assert default.float_precision == explicit.float_precision == "fp32"
    assert np.array_equal(default.run(x.numpy()), explicit.run(x.numpy()))


@needs_bf16
@pytest.mark.parametrize("threads", [1, 2])
def test_bf16_kernel_is_bit_identical_to_its_emulation(tmp_path, threads):
    torch.manual_seed(0)
    x = torch.randn(5, 3, 20, 18)
    path = export(tmp_path, _small_net(), x)
    got = load(path, num_threads=threads, float_precision="bf16").run(x.numpy())
    want = load(path, num_threads=threads, float_precision="bf16_emulated").run(x.numpy())
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@needs_bf16
@pytest.mark.parametrize("name", ["binary_resnet_e18", "quicknet", "birealnet18", "binary_densenet28"])
def test_zoo_models_bf16_bit_identical_to_emulation(tmp_path, name):
    torch.manual_seed(0)
    model = onebit.models.create(name).eval()
    x = torch.randn(2, 3, 64, 64)
    path = export(tmp_path, model, x)
    got = load(path, num_threads=2, float_precision="bf16").run(x.numpy())
    want = load(path, num_threads=2, float_precision="bf16_emulated").run(x.numpy())
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@needs_bf16
def test_binary_resnet_e18_bf16_close_to_fp32(tmp_path):
    """The whole model at 224x224: random weights amplify every rounding (a flipped sign moves the
    logits), so the bound is loose: the bf16 logits must still point the same way as fp32's
    (cosine >= 0.9; measured ~0.97 on real photos). Top-1 agreement on trained models is
    measured in docs/performance.md."""
    from onebit.export.verify import calibrate_batchnorm

    torch.manual_seed(0)
    model = onebit.models.create("binary_resnet_e18")
    x = torch.randn(6, 3, 224, 224)
    calibrate_batchnorm(model, x)
    path = export(tmp_path, model, x)
    y32 = load(path, num_threads=2).run(x.numpy())
    y16 = load(path, num_threads=2, float_precision="bf16").run(x.numpy())
    assert np.all(np.isfinite(y16))
    cos = np.sum(y16 * y32, 1) / np.linalg.norm(y16, axis=1) / np.linalg.norm(y32, axis=1)
    assert np.all(cos >= 0.9), cos
    # the float stem alone (conv 7x7/2 + folded BN, ReLU, max-pool) stays within bf16 rounding
    stem = load(export(tmp_path, model.stem, x, "stem.onebit"), num_threads=2, float_precision="bf16")
    s16, s32 = stem.run(x.numpy()), load(str(tmp_path / "stem.onebit"), num_threads=2).run(x.numpy())
    assert np.max(np.abs(s16 - s32)) <= 2**-6 * np.max(np.abs(s32))


def test_bad_precision_strings(tmp_path):
    torch.manual_seed(0)
    path = export(tmp_path, nn.Sequential(nn.Linear(4, 3)), torch.randn(1, 4))
    for bad in ["bf17", "BF16", "", "int4", None, 16]:
        with pytest.raises(
            ValueError, match="float_precision must be one of fp32, bf16, bf16_emulated, int8, "
        ):
            load(path, float_precision=bad)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match="unknown float_precision 'fp16': expected one of fp32, bf16, bf16_emulated, int8, int8_",
    ):
        _C.Engine.load(path, float_precision="fp16")


@pytest.fixture
def portable_isa():
    before = _C.active_isa()
    _C.set_isa("portable")
    yield
    _C.set_isa(before)


def test_bf16_refused_under_a_forced_portable_path(tmp_path, portable_isa):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    path = export(tmp_path, _small_net(), x)
    match = (
        "AVX512_BF16"
        if not HAS_BF16
        else r"part of the avx512 path, but the instruction set in force is 'portable'"
    )
    with pytest.raises(ValueError, match=match):
        load(path, float_precision="bf16")
    # the emulation runs on any path
    assert load(path, float_precision="bf16_emulated").run(x.numpy()).shape == (2, 10)


@pytest.mark.skipif(HAS_BF16, reason="this CPU has AVX512_BF16: the refusal for its absence cannot happen")
def test_bf16_refused_without_the_cpu_feature(tmp_path):
    path = export(tmp_path, nn.Sequential(nn.Linear(4, 3)), torch.randn(1, 4))
    with pytest.raises(ValueError, match="needs the CPU feature AVX512_BF16"):
        load(path, float_precision="bf16")


def test_onebit_isa_environment_forcing(tmp_path):
    """ONEBIT_ISA=avx2 (set before the engine starts) refuses bf16 and runs bf16_emulated with the
    bits the emulation gives in this process."""
    if not _C.isa_supported("avx2"):
        pytest.skip(f"CPU lacks avx2 (has: {_C.cpu_features()})")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    path = export(tmp_path, _small_net(), x)
    np.save(tmp_path / "x.npy", x.numpy())
    code = (
        "import sys, numpy as np\n"
        "from onebit.runtime import load\n"
        "x = np.load(sys.argv[2])\n"
        "try:\n"
        "    load(sys.argv[1], float_precision='bf16')\n"
        "except ValueError as e:\n"
        "    print('refused:', e)\n"
        "np.save(sys.argv[3], load(sys.argv[1], num_threads=1, float_precision='bf16_emulated').run(x))\n"
    )
    env = dict(os.environ, ONEBIT_ISA="avx2")
    r = subprocess.run(
        [sys.executable, "-c", code, path, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and ("'avx2'" in r.stdout or "AVX512_BF16" in r.stdout), r.stdout
    want = load(path, num_threads=1, float_precision="bf16_emulated").run(x.numpy())
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy").view(np.uint32), want.view(np.uint32))


def test_onebit_isa_amx_is_opt_in_and_checked():
    """The amx path is never the default; ONEBIT_ISA=amx selects the tile kernel where the CPU and
    the OS allow AMX-INT8 and is refused, naming the CPU's features, elsewhere."""
    assert _C.best_isa() != "amx"
    code = "from onebit import _C\nprint(_C.active_isa(), _C.kernel_names()['i8gemm'])\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, ONEBIT_ISA="amx"))
    if HAS_AMX:
        assert r.returncode == 0 and r.stdout.split() == ["amx", "i8gemm_32x32_amx"], r.stdout + r.stderr
    else:
        assert r.returncode != 0, r.stdout
        assert "instruction set 'amx' is not supported by this CPU" in r.stderr, r.stderr


@needs_bf16
def test_isa_switched_after_load_keeps_the_bits(tmp_path):
    """A bf16 model loaded on the avx512 path and run after set_isa('portable') runs the emulation:
    the same bits, no AVX-512 instruction."""
    torch.manual_seed(0)
    x = torch.randn(3, 3, 16, 16)
    path = export(tmp_path, _small_net(), x)
    m = load(path, num_threads=2, float_precision="bf16")
    want = m.run(x.numpy())
    before = _C.active_isa()
    _C.set_isa("portable")
    try:
        got = m.run(x.numpy())
    finally:
        _C.set_isa(before)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_bf16_scratch_counts_against_the_memory_cap(tmp_path):
    """A bf16 convolution holds its input rounded to bf16 (here 16 x 32 x 32 x 32 values, 1 MiB) and
    its chunks of bf16 rows during a call: a cap 600 kB above the values' memory stops it, while the
    fp32 layer (im2col chunks of 96 rows, ~150 kB) runs under it."""
    torch.manual_seed(0)
    x = torch.randn(16, 32, 32, 32)
    path = export(tmp_path, nn.Sequential(nn.Conv2d(32, 32, 3, padding=1)), x)
    cap = load(path).memory_bytes(16) + 600_000
    load(path, memory_cap=cap, num_threads=1).run(x.numpy())
    with pytest.raises(MemoryError, match=r"batch 16 needs .* at node 0 \(conv2d"):
        load(path, memory_cap=cap, num_threads=1, float_precision="bf16_emulated").run(x.numpy())


# ---------------------------------------------------------------------------------------------
# int8


def _quant(x: np.ndarray) -> tuple[np.ndarray, np.float32, int]:
    """One sample's u8 quantization as kernels/i8gemm.h defines it: (x_q, s_a, zp)."""
    f32 = np.float32
    lo, hi = min(f32(0), x.min()), max(f32(0), x.max())
    s = f32(hi - lo) / f32(255)
    inv = f32(1) / s if s > 0 else f32(1)
    s = s if s > 0 else f32(1)
    zp = f32(min(255, max(0, np.rint(-lo * inv))))
    v = x.astype(f32) * inv + zp
    return np.rint(np.clip(v, f32(0), f32(255))).astype(np.int64), s, int(zp)


def _quant_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (first axis) symmetric int8: (w_q, s_w)."""
    flat = w.reshape(w.shape[0], -1).astype(np.float32)
    amax = np.abs(flat).max(1)
    s = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(flat / s[:, None]), -127, 127).astype(np.int64)
    return q.reshape(w.shape), s


def _dequant(
    acc: np.ndarray, zp: int, wsum: np.ndarray, s_a: np.float32, s_w: np.ndarray, b: np.ndarray
) -> np.ndarray:
    y = (acc - zp * wsum).astype(np.float32) * (s_a * s_w)
    return (y + b).astype(np.float32)


@pytest.mark.parametrize("precision", INT8)
@pytest.mark.parametrize("case", list(CONVS), ids=list(CONVS))
def test_int8_conv2d_is_its_quantization_model(tmp_path, case, precision):
    """Bit for bit. A grouped conv quantizes each group's input channels on their own."""
    cin, cout, k, s, pad, dil, groups, h, w, n = CONVS[case]
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, k, s, pad, dil, groups=groups, bias=True)
    x = torch.randn(n, cin, h, w) * torch.tensor([1.0, 0.1, 3.0])[torch.arange(n) % 3].view(-1, 1, 1, 1)
    with int8_path(precision) as prec:
        m = load(export(tmp_path, nn.Sequential(conv), x), num_threads=2, float_precision=prec)
        assert [r["precision"] for r in m.describe() if r["op"] == "conv2d"] == [prec]
        got = m.run(x.numpy())
    wq, sw = _quant_weights(conv.weight.detach().numpy())
    wsum = wq.reshape(cout, -1).sum(1)
    b = conv.bias.detach().numpy()
    want = np.empty_like(got)
    cg, og = cin // groups, cout // groups
    sa_of = np.empty((n, groups), np.float64)
    for i in range(n):
        for g in range(groups):
            xq, sa, zp = _quant(x[i, g * cg : (g + 1) * cg].numpy())
            sa_of[i, g] = sa
            padded = np.pad(xq, ((0, 0), (pad, pad), (pad, pad)), constant_values=zp)  # the padding is zp
            o = slice(g * og, (g + 1) * og)
            acc = (
                F.conv2d(
                    torch.from_numpy(padded[None]).double(),
                    torch.from_numpy(wq[o]).double(),
                    stride=s,
                    dilation=dil,
                )
                .numpy()[0]
                .astype(np.int64)
            )  # exact: |sums| < 2^31
            want[i, o] = _dequant(acc.transpose(1, 2, 0), zp, wsum[o], sa, sw[o], b[o]).transpose(2, 0, 1)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # and within the quantization error of the exact result: |x^ - x| <= s_a / 2 (zero padding
    # is exact), |w^ - w| <= s_w / 2, so |x^ w^ - x w| <= s_a / 2 (|w| + s_w / 2) + |x| s_w / 2
    with torch.no_grad():
        wd = conv.weight.double()
        args = dict(stride=s, padding=pad, dilation=dil, groups=groups)
        ref = F.conv2d(x.double(), wd, conv.bias.double(), **args).numpy()
        swd = torch.from_numpy(sw.astype(np.float64)).view(-1, 1, 1, 1)
        sa = torch.from_numpy(np.repeat(sa_of, og, axis=1)).view(n, cout, 1, 1)  # per output channel's group
        inside = F.conv2d(torch.ones_like(x).double(), wd.abs() + swd / 2, **args)
        xs = F.conv2d(x.double().abs(), torch.ones_like(wd), **args) * swd.view(1, -1, 1, 1) / 2
        bound = (sa / 2 * inside + xs).numpy()
    err = np.abs(got - ref)
    assert np.all(err <= bound * (1 + 1e-5) + 1e-5 * (1 + np.abs(ref))), float((err - bound).max())


@pytest.mark.parametrize("precision", INT8)
@pytest.mark.parametrize(("batch", "k", "n"), [(1, 512, 1000), (1, 37, 10), (5, 37, 10), (9, 257, 70)])
def test_int8_dense_is_its_quantization_model(tmp_path, batch, k, n, precision):
    torch.manual_seed(1)
    fc = nn.Linear(k, n)
    x = torch.randn(batch, k) + torch.linspace(-1, 2, batch)[:, None]  # rows with other ranges and signs
    with int8_path(precision) as prec:
        got = load(export(tmp_path, nn.Sequential(fc), x), num_threads=2, float_precision=prec).run(x.numpy())
    wq, sw = _quant_weights(fc.weight.detach().numpy())
    for i in range(batch):
        xq, sa, zp = _quant(x[i].numpy())
        want = _dequant(wq @ xq, zp, wq.sum(1), sa, sw, fc.bias.detach().numpy())
        np.testing.assert_array_equal(got[i].view(np.uint32), want.view(np.uint32))


@needs_vnni
@pytest.mark.parametrize("name", ["binary_resnet_e18", "quicknet"])
def test_int8_kernel_is_bit_identical_to_its_emulation(tmp_path, name):
    torch.manual_seed(0)
    model = onebit.models.create(name).eval()
    x = torch.randn(2, 3, 64, 64)
    path = export(tmp_path, model, x)
    got = load(path, num_threads=2, float_precision="int8").run(x.numpy())
    want = load(path, num_threads=2, float_precision="int8_emulated").run(x.numpy())
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    small = export(tmp_path, _small_net(), torch.randn(3, 3, 16, 16), "small.onebit")
    xs = torch.randn(3, 3, 16, 16).numpy()
    np.testing.assert_array_equal(
        load(small, float_precision="int8").run(xs).view(np.uint32),
        load(small, float_precision="int8_emulated").run(xs).view(np.uint32),
    )


@needs_amx
def test_int8_amx_shared_by_many_threads(tmp_path):
    """8 Python threads on one int8 model on the amx path (tiles configured and released per
    kernel call, per thread) give the single-threaded bits."""
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    path = export(tmp_path, onebit.models.create("binary_resnet_e18").eval(), x)
    inputs = [np.random.default_rng(i).standard_normal((1, 3, 64, 64)).astype(np.float32) for i in range(4)]
    with int8_path("int8-amx"):
        m = load(path, num_threads=2, float_precision="int8")
        want = [m.run(v).view(np.uint32) for v in inputs]
        with ThreadPoolExecutor(8) as pool:  # 96 calls, 8 at a time
            got = list(pool.map(lambda i: m.run(inputs[i % 4]).view(np.uint32), range(96)))
    bad = [i for i, g in enumerate(got) if not np.array_equal(g, want[i % 4])]
    assert not bad, f"calls {bad} differ from the single-threaded bits"


@needs_amx
@pytest.mark.parametrize("threads", [1, 2])
def test_int8_amx_is_bit_identical_to_vnni_and_emulation(tmp_path, threads):
    """The AMX tile kernel (opt-in: ONEBIT_ISA=amx) gives the VNNI kernel's bits on whole models, also
    when the path is switched after the load (the packed weights do not depend on it)."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    for name in ("binary_resnet_e18", "quicknet"):
        path = export(tmp_path, onebit.models.create(name).eval(), x, f"{name}.onebit")
        m = load(path, num_threads=threads, float_precision="int8")
        with int8_path("int8-amx"):
            assert _C.kernel_names()["i8gemm"] == "i8gemm_32x32_amx"
            got = m.run(x.numpy())
        want = load(path, num_threads=threads, float_precision="int8_emulated").run(x.numpy())
        np.testing.assert_array_equal(got.view(np.uint32), m.run(x.numpy()).view(np.uint32))
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_int8_refused_under_a_forced_portable_path(tmp_path, portable_isa):
    path = export(tmp_path, nn.Sequential(nn.Linear(4, 3)), torch.randn(1, 4))
    match = "AVX512_VNNI" if not HAS_VNNI else "instruction set in force is 'portable'.*'int8_emulated'"
    with pytest.raises(ValueError, match=match):
        load(path, float_precision="int8")
    assert load(path, float_precision="int8_emulated").run(np.ones((1, 4), np.float32)).shape == (1, 3)


def test_int8_deep_layers_stay_fp32(tmp_path):
    """A dense layer with more than 32,768 inputs per output could overflow the int32 sums: it runs
    in fp32 (and says so), bit-identical to the fp32 model."""
    torch.manual_seed(0)
    x = torch.randn(2, 40000)
    path = export(tmp_path, nn.Sequential(nn.Linear(40000, 3)), x)
    m = load(path, float_precision="int8_emulated")
    assert [r["precision"] for r in m.describe() if r["op"] == "dense"] == ["fp32"]
    np.testing.assert_array_equal(m.run(x.numpy()), load(path).run(x.numpy()))

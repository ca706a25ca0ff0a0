"""The exporter fuses a float conv's following add and relu into it (passes.fuse_conv_epilogues),
and a binary conv's relu -> BatchNorm -> add (QuickNet's blocks; passes.fuse_conv_post_affine).

The engine then computes activation(conv + residual), or relu(conv) * scale + shift + residual,
in each tile as the conv writes it. The
fusion must not change a bit: every case is exported twice, with and without the pass, and
both files must give identical outputs (compared as uint32) on every instruction set.
The zoo models are covered by tests/runtime/test_golden.py: their fused exports reproduce
the outputs recorded from the unfused ones, bit for bit, on every ISA.
"""

from __future__ import annotations

import collections

import numpy as np
import torch
from torch import nn

import onebit
import onebit.export.passes as passes
from onebit import _C
from onebit.nn import QuantConv2d
from onebit.runtime import load

from .conftest import BIN, randomize_bn

ISAS = ["reference", "portable", "avx2", "avx512"]


class ResNetish(nn.Module):
    """Stem conv-BN-ReLU; a binary block x + BN(bconv(x)); a downsampling block whose 1x1
    shortcut runs after its binary conv; relu(x + BN(bconv)); a float block relu(conv + x)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.c1, self.b1 = QuantConv2d(64, 64, 3, padding=1, bias=False, **BIN), nn.BatchNorm2d(64)
        self.c2, self.b2 = QuantConv2d(64, 96, 3, stride=2, padding=1, bias=False, **BIN), nn.BatchNorm2d(96)
        self.short = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(64, 96, 1, bias=False), nn.BatchNorm2d(96))
        self.c3, self.b3 = QuantConv2d(96, 96, 3, padding=1, bias=False, **BIN), nn.BatchNorm2d(96)
        self.f4 = nn.Conv2d(96, 96, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(96, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.b1(self.c1(x))
        x = self.b2(self.c2(x)) + self.short(x)
        x = torch.relu(self.b3(self.c3(x)) + x)
        x = torch.relu(x + self.f4(x))
        return self.head(torch.flatten(self.pool(x), 1))


def _export_both(model: nn.Module, x: torch.Tensor, tmp_path, monkeypatch) -> tuple[str, str]:
    fused, plain = str(tmp_path / "fused.onebit"), str(tmp_path / "plain.onebit")
    onebit.export(model, x[:1], fused)
    fusions = (passes.fuse_conv_epilogues, passes.fuse_conv_post_affine)
    without = tuple(p for p in passes.FOLDING_PASSES if p not in fusions)
    monkeypatch.setattr(passes, "FOLDING_PASSES", without)
    onebit.export(model, x[:1], plain)
    monkeypatch.undo()
    return fused, plain


def _ops(path: str) -> collections.Counter:
    return collections.Counter(n["op"] for n in load(path).meta["nodes"])


def _outputs_per_isa(paths: tuple[str, ...], x: np.ndarray) -> dict[str, list[np.ndarray]]:
    before, out = _C.active_isa(), {}
    try:
        for isa in ISAS:
            if not _C.isa_supported(isa):
                continue  # reported by the runtime tests' isa fixture
            _C.set_isa(isa)
            out[isa] = [load(p, num_threads=t).run(x) for p in paths for t in (1, 2)]
    finally:
        _C.set_isa(before)
    return out


def _assert_same_bits_and_close_to_torch(model: nn.Module, x: torch.Tensor, fused: str, plain: str) -> None:
    """Fused and unfused files give the same bits on every ISA and thread count; and torch's answer."""
    xs = x.numpy()
    for isa, (f1, f2, p1, p2) in _outputs_per_isa((fused, plain), xs).items():
        for a, b in ((f1, p1), (f2, p2), (f1, f2)):
            np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32), err_msg=isa)
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(load(fused).run(xs), want, rtol=1e-4, atol=1e-4)


def test_residual_and_relu_fuse_into_convs_bit_for_bit(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = randomize_bn(ResNetish()).eval()
    x = torch.randn(3, 3, 16, 16)
    fused, plain = _export_both(model, x, tmp_path, monkeypatch)
    ops_f, ops_p = _ops(fused), _ops(plain)
    assert ops_p["add"] == 4 and ops_p["relu"] == 3
    assert ops_f["add"] == 0 and ops_f["relu"] == 0, ops_f
    nodes = load(fused).meta["nodes"]
    with_residual = [n for n in nodes if len(n["inputs"]) == 2 and n["op"] in ("conv2d", "bconv2d")]
    # the binary conv absorbs the downsampling add (its kernel applies it per tile)
    assert [n["op"] for n in with_residual] == ["bconv2d", "bconv2d", "bconv2d", "conv2d"]
    assert [n["attrs"].get("activation", "none") for n in with_residual] == ["none", "none", "relu", "relu"]
    assert nodes[0]["op"] == "conv2d" and nodes[0]["attrs"]["activation"] == "relu"
    _assert_same_bits_and_close_to_torch(model, x, fused, plain)


def test_a_conv_read_twice_keeps_its_output(tmp_path, monkeypatch):
    """y = conv_a(x) feeds the add and the concat: conv_b (read once) absorbs the add instead."""

    class TwoUses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.a(x)
            return torch.cat([torch.relu(y + self.b(x)), y], 1)

    torch.manual_seed(0)
    model = TwoUses().eval()
    x = torch.randn(2, 3, 8, 8)
    fused, plain = _export_both(model, x, tmp_path, monkeypatch)
    nodes = load(fused).meta["nodes"]
    assert [n["op"] for n in nodes] == ["conv2d", "conv2d", "concat"]
    assert nodes[1]["inputs"][1] == nodes[0]["outputs"][0] and nodes[1]["attrs"]["activation"] == "relu"
    for isa, outs in _outputs_per_isa((fused, plain), x.numpy()).items():
        np.testing.assert_array_equal(outs[0].view(np.uint32), outs[2].view(np.uint32), err_msg=isa)


class QuickNetish(nn.Module):
    """QuickNet's blocks x + BN(relu(bconv(x))); one whose BN output is read twice (the add is
    not fused: the conv keeps the affine only); a last block relu -> BN with no add."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 48, 3, padding=1, bias=False), nn.BatchNorm2d(48))
        self.convs = nn.ModuleList(QuantConv2d(48, 48, 3, padding=1, bias=False, **BIN) for _ in range(4))
        self.bns = nn.ModuleList(nn.BatchNorm2d(48) for _ in range(4))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(96, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(2):
            x = x + self.bns[i](torch.relu(self.convs[i](x)))
        y = self.bns[2](torch.relu(self.convs[2](x)))
        x = x + y
        z = self.bns[3](torch.relu(self.convs[3](x)))
        return self.head(torch.flatten(self.pool(torch.cat([z, y], 1)), 1))


def test_relu_batchnorm_add_fuse_into_binary_convs_bit_for_bit(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = randomize_bn(QuickNetish()).eval()
    x = torch.randn(3, 3, 12, 12)
    fused, plain = _export_both(model, x, tmp_path, monkeypatch)
    ops_f, ops_p = _ops(fused), _ops(plain)
    assert ops_p["affine"] == 4 and ops_p["relu"] == 4 and ops_p["add"] == 3, ops_p
    assert ops_f["affine"] == 0 and ops_f["relu"] == 0 and ops_f["add"] == 1, ops_f  # x + y: y is read twice
    convs = [n for n in load(fused).meta["nodes"] if n["op"] == "bconv2d"]
    assert all("post_scale" in n["params"] and n["attrs"]["activation"] == "relu" for n in convs)
    assert [len(n["inputs"]) for n in convs] == [2, 2, 1, 1]
    _assert_same_bits_and_close_to_torch(model, x, fused, plain)


class DenseTransition(nn.Module):
    """BinaryDenseNet's transition after a concat: BN -> maxpool -> relu -> 1x1 conv; then a
    second BN -> maxpool (3x3/2, padded) read by a sign, which must stay a binary maxpool."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 8, 3, padding=1)
        self.bn1, self.pool1 = nn.BatchNorm2d(16), nn.MaxPool2d(2)
        self.conv = nn.Conv2d(16, 16, 1)
        self.c, self.d = nn.Conv2d(16, 8, 1), nn.Conv2d(16, 8, 1)
        self.bn2, self.pool2 = nn.BatchNorm2d(16), nn.MaxPool2d(3, 2, 1)
        self.bconv = QuantConv2d(16, 8, 3, padding=1, bias=False, **BIN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.a(x), self.b(x)], 1)  # no conv produces the BN's input: it stays an affine
        y = self.conv(torch.relu(self.pool1(self.bn1(y))))
        z = torch.cat([self.c(y), self.d(y)], 1)
        return self.bconv(self.pool2(self.bn2(z)))


def _with_positive_gammas(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.abs_().add_(0.1)
    return model


def _export_without(model: nn.Module, x: torch.Tensor, tmp_path, monkeypatch, skip) -> tuple[str, str]:
    moved, plain = str(tmp_path / "moved.onebit"), str(tmp_path / "plain.onebit")
    onebit.export(model, x[:1], moved)
    monkeypatch.setattr(passes, "FOLDING_PASSES", tuple(p for p in passes.FOLDING_PASSES if p is not skip))
    onebit.export(model, x[:1], plain)
    monkeypatch.undo()
    return moved, plain


def test_affine_moves_past_maxpool_bit_for_bit(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = _with_positive_gammas(randomize_bn(DenseTransition())).eval()
    x = torch.randn(2, 3, 12, 12)
    x[0, 0, :3, :3] = 0.0  # zeros under the windows: -0 and +0 must come out as before
    moved, plain = _export_without(model, x, tmp_path, monkeypatch, passes.move_affine_past_maxpool)
    ops = [n["op"] for n in load(moved).meta["nodes"]]
    i = ops.index("maxpool")
    assert ops[i + 1 : i + 3] == ["affine", "relu"], ops  # the transition: pooled, then scaled
    assert ops.count("maxpool") == 1 and "bmaxpool" in ops, ops  # the pool before the sign stays binary
    assert [n["op"] for n in load(plain).meta["nodes"]][i] == "affine"
    _assert_same_bits_and_close_to_torch(model, x, moved, plain)


def test_affine_with_a_negative_scale_stays_before_maxpool(tmp_path, monkeypatch):
    """max(a x + b) = a max(x) + b needs a > 0: a channel with a < 0 keeps the affine first."""
    torch.manual_seed(0)
    model = _with_positive_gammas(randomize_bn(DenseTransition())).eval()
    model.bn1.weight.data[3] = -0.7
    x = torch.randn(2, 3, 12, 12)
    moved, plain = _export_without(model, x, tmp_path, monkeypatch, passes.move_affine_past_maxpool)
    assert [n["op"] for n in load(moved).meta["nodes"]] == [n["op"] for n in load(plain).meta["nodes"]]
    _assert_same_bits_and_close_to_torch(model, x, moved, plain)

"""Regenerate the engine fuzzer's corpus (tests/csrc/corpus/): seeds and hostile regression files.

    .venv/bin/python tests/csrc/make_corpus.py [--out tests/csrc/corpus]

``seeds/`` holds small models exported by onebit.export: slim versions of zoo
models (BinaryNet MLP, BinaryResNetE, an XNOR-Net ResNet block stack,
BinaryDenseNet, BinaryNet CIFAR) and hand-made nets that reach every engine op
and the odd geometries (padding values +1/-1/0, dilation, groups, ceil_mode
pools, count_include_pad, xnor / channel scaling, binary-weight float layers,
mixed concat, softmax). tests/csrc/fuzz_engine.cc mutates them.

``regress/`` holds hostile files derived from the seeds, each a known way to
break a loader (integer overflow in conv geometry, huge zero-fills, cycles,
redefinitions, wrong JSON types, tensors outside the file, padding bits in
packed weights, ...). ``regress/expected.json`` maps each file to what the
engine must answer: ``"format"`` (a FormatError whose message contains
``match``) or ``"clean"`` (loads and runs, or fails with a FormatError or a
memory-cap error; never crashes, never takes over a second).
The files are deterministic for given onebit / torch versions (the export date is pinned).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import onebit
from onebit import quantizers
from onebit.models.bethge import BinaryDenseNet
from onebit.models.quicknet import QuickNet
from onebit.models.xnornet import XnorBlock, _stem
from onebit.nn import QuantConv2d, QuantLinear, Scale
from onebit.runtime.format import read_model_file, write_model_file

HERE = Path(__file__).resolve().parent
BIN = dict(input_quantizer="ste_sign", weight_quantizer="ste_sign", weight_constraint="weight_clip")
MAX_SEED_BYTES = 300 * 1024


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm statistics (negative gammas too) so folding emits flips and directions."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.rand(n, generator=g) * 2 - 1)
            if m.bias is not None:
                m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


def _features(model: nn.Module, shape: tuple[int, ...]) -> int:
    """Features model.features() makes of one input of `shape` (sizes the classifier)."""
    with torch.no_grad():
        return int(model.features(torch.zeros(shape)).numel())


class Geometry(nn.Module):
    """Binary convs with +1 / -1 / 0 padding, dilation, stride; ceil-mode pools; odd channel counts."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 70, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(70)
        self.c1 = QuantConv2d(70, 36, 3, padding=2, dilation=2, bias=False, pad_value=1.0, **BIN)
        self.bn1 = nn.BatchNorm2d(36)
        self.c2 = QuantConv2d(36, 36, 3, stride=2, padding=1, bias=False, pad_value=-1.0, **BIN)
        self.bn2 = nn.BatchNorm2d(36)
        self.p2 = nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.c3 = QuantConv2d(36, 20, (3, 1), padding=(1, 0), bias=False, pad_value=0.0, **BIN)
        self.bn3 = nn.BatchNorm2d(20)
        self.p3 = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True)
        self.prelu = nn.PReLU(20)
        self.softmax = nn.Softmax(dim=1)
        self.fc = nn.Linear(_features(self, (1, 3, 15, 13)), 7)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.stem(x))
        x = self.bn1(self.c1(x))
        x = self.p2(self.bn2(self.c2(x)))
        return self.prelu(self.p3(self.bn3(self.c3(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.softmax(self.fc(torch.flatten(self.features(x), 1)))


class Scaled(nn.Module):
    """XNOR scaling (xnor_k, mul_map, mean_abs), channel scaling, a binary-weight conv, Hardtanh, Scale."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 24, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(24)
        self.c1 = QuantConv2d(24, 24, 3, padding=1, dilation=1, bias=True, scaling="xnor", **BIN)
        self.bn1 = nn.BatchNorm2d(24)
        self.c2 = QuantConv2d(24, 16, 3, stride=2, padding=2, dilation=2, bias=False, scaling="xnor", **BIN)
        self.bwn = QuantConv2d(
            16,
            16,
            3,
            padding=1,
            bias=False,
            weight_quantizer="ste_sign",
            weight_constraint="weight_clip",
            scaling="channel",
        )
        self.act = nn.Hardtanh()
        self.mp = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
        self.pool = nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)
        self.fc1 = QuantLinear(_features(self, (1, 1, 16, 16)), 30, bias=True, scaling="xnor", **BIN)
        self.bn2 = nn.BatchNorm1d(30)
        self.fc2 = QuantLinear(30, 5, bias=False, **BIN)
        self.scale = Scale(0.25)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.c1(self.bn0(self.stem(x))))
        return self.pool(self.mp(self.act(self.bwn(self.c2(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(self.fc2(self.bn2(self.fc1(torch.flatten(self.features(x), 1)))))


class Mixed(nn.Module):
    """Concat of binary and float values, residual adds, depthwise float conv, global pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.b1 = QuantConv2d(16, 16, 3, padding=1, bias=False, **BIN)
        self.bn1 = nn.BatchNorm2d(16)
        self.sign = quantizers.SteSign()
        self.dw = nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=True)
        self.gc = nn.Conv2d(32, 8, 1, groups=4, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.stem(x))
        y = self.bn1(self.b1(x)) + x
        z = torch.cat([y, self.sign(x)], dim=1)
        z = self.relu(self.gc(self.dw(z)))
        return self.fc(torch.flatten(self.pool(z), 1))


class SlimXnorResNet(nn.Module):
    """XNOR-Net ResNet-18's stem and blocks (zoo's XnorBlock), two stages narrowed to fit the corpus."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = _stem(3, 32)
        self.layer1 = nn.Sequential(XnorBlock(64, 32, 2), XnorBlock(32, 32, 1))
        self.layer2 = nn.Sequential(XnorBlock(32, 48, 2))
        self.head = nn.Sequential(nn.BatchNorm2d(48), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class FloatOps(nn.Module):
    """Every kind of the activation op, group_norm, layer_norm (channels and rows), every upsample mode."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.ln = nn.LayerNorm(11)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(11, 16)
        self.ln1 = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.silu(self.gn(self.stem(x)))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = torch.cat([F.gelu(y), x], dim=1).permute(0, 2, 3, 1)
        y = F.hardswish(self.ln(y).permute(0, 3, 1, 2))
        y = F.interpolate(F.gelu(y, approximate="tanh"), size=(5, 7), mode="nearest")
        y = F.interpolate(y, scale_factor=1.5, mode="nearest-exact")
        y = F.interpolate(torch.sigmoid(y), size=(3, 3), mode="bilinear", align_corners=True)
        z = torch.flatten(self.pool(F.hardsigmoid(y)), 1)
        return self.fc2(torch.tanh(self.ln1(self.fc1(z))))


def seed_models() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)  # the initial weights
    m = onebit.models
    return {
        "binarynet_mlp": (m.create("binarynet_mlp", hidden=96, num_hidden=2), (1, 1, 28, 28)),
        "binarynet_cifar": (m.create("binarynet_cifar", width=0.125), (1, 3, 32, 32)),
        "binary_resnet_e18": (
            m.create(
                "binary_resnet_e18",
                input_size=32,
                num_classes=10,
                filters=(16, 32, 48, 64),
                initial_filters=16,
            ),
            (1, 3, 32, 32),
        ),
        "binary_densenet": (
            BinaryDenseNet(
                (2, 2, 2, 1),
                (2.7, 2.7, 2.2),
                num_classes=10,
                input_size=32,
                initial_filters=16,
                growth_rate=16,
            ),
            (1, 3, 32, 32),
        ),
        "xnornet_resnet_slim": (SlimXnorResNet(), (1, 3, 32, 32)),
        "geometry": (Geometry(), (1, 3, 15, 13)),
        "scaled": (Scaled(), (1, 1, 16, 16)),
        "mixed": (Mixed(), (1, 3, 8, 8)),
        "float_ops": (FloatOps(), (1, 3, 8, 8)),
        # its blocks' relu -> BatchNorm -> add fuse into the binary conv (post_scale, post_shift)
        "quicknet_slim": (
            QuickNet((1, 1, 1, 1), (16, 32, 32, 64), num_classes=10, input_size=32),
            (1, 3, 32, 32),
        ),
    }


def _packed(rng: np.random.Generator, rows: int, channels: int) -> np.ndarray:
    """Random +-1 filters packed as files store them: words_for(channels) uint64 per row, padding 0."""
    bits = rng.integers(0, 2, size=(rows, channels), dtype=np.uint64)
    words = np.zeros((rows, (channels + 63) // 64), np.uint64)
    for c in range(channels):
        words[:, c // 64] |= bits[:, c] << np.uint64(c % 64)
    return words


def grouped_seed(path: Path) -> int:
    """Hand-made graph: grouped bconv2d (2 and 3 channels per group) with binary and
    float outputs, bnot, bmaxpool with ceil_mode, clip, mean_abs, mul_map, unpack, flatten of bits, bdense."""
    rng = np.random.default_rng(7)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    t: dict[str, np.ndarray] = {
        "s0.threshold": f32(6) * 0.1,
        "s0.flip": (rng.random(6) < 0.3).astype(np.uint8),
        "c1.weight": _packed(rng, 6 * 9, 2).reshape(6, 3, 3, 1),
        "c1.threshold": rng.integers(-4, 5, 6).astype(np.int32),
        "c1.direction": np.where(rng.random(6) < 0.5, -1, 1).astype(np.int32),
        "n1.mask": (rng.random(6) < 0.5).astype(np.float32),
        "c2.weight": _packed(rng, 4 * 6, 3).reshape(4, 3, 2, 1),
        "c2.multiplier": f32(4),
        "c2.bias": f32(4),
        "s3.threshold": np.zeros(4, np.float32),
        "s4.threshold": f32(4) * 0.1,
        "fc.weight": _packed(rng, 5, 40),
        "fc.multiplier": f32(5),
        "fc.bias": f32(5),
    }
    win = {"stride": [1, 1], "dilation": [1, 1]}
    nodes = [
        {
            "op": "sign",
            "inputs": ["x"],
            "outputs": ["s0"],
            "params": {"threshold": "s0.threshold", "flip": "s0.flip"},
        },
        {
            "op": "bconv2d",
            "inputs": ["s0"],
            "outputs": ["c1"],
            "attrs": {
                "kernel": [3, 3],
                "padding": [1, 1, 1, 1],
                **win,
                "groups": 3,
                "in_channels": 6,
                "pad_value": -1.0,
                "output": "binary",
            },
            "params": {"weight": "c1.weight", "threshold": "c1.threshold", "direction": "c1.direction"},
        },
        {"op": "bnot", "inputs": ["c1"], "outputs": ["n1"], "params": {"mask": "n1.mask"}},
        {
            "op": "bmaxpool",
            "inputs": ["n1"],
            "outputs": ["p1"],
            "attrs": {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0], "ceil_mode": True},
        },
        {
            "op": "bconv2d",
            "inputs": ["p1"],
            "outputs": ["c2"],
            "attrs": {
                "kernel": [3, 2],
                "padding": [1, 0, 2, 1],
                "stride": [1, 2],
                "dilation": [1, 1],
                "groups": 2,
                "in_channels": 6,
                "pad_value": 0.0,
                "output": "float",
            },
            "params": {"weight": "c2.weight", "multiplier": "c2.multiplier", "bias": "c2.bias"},
        },
        {"op": "clip", "inputs": ["c2"], "outputs": ["k2"], "attrs": {"min": -1.5, "max": 2.0}},
        {"op": "mean_abs", "inputs": ["k2"], "outputs": ["m2"]},
        {"op": "mul_map", "inputs": ["k2", "m2"], "outputs": ["y2"]},
        {"op": "sign", "inputs": ["y2"], "outputs": ["s3"], "params": {"threshold": "s3.threshold"}},
        {"op": "unpack", "inputs": ["s3"], "outputs": ["u3"]},
        {"op": "add", "inputs": ["u3", "y2"], "outputs": ["a3"]},
        {"op": "sign", "inputs": ["a3"], "outputs": ["s4"], "params": {"threshold": "s4.threshold"}},
        {"op": "flatten", "inputs": ["s4"], "outputs": ["f3"]},
        {
            "op": "bdense",
            "inputs": ["f3"],
            "outputs": ["fc"],
            "attrs": {"in_channels": 40, "output": "float"},
            "params": {"weight": "fc.weight", "multiplier": "fc.multiplier", "bias": "fc.bias"},
        },
    ]
    enc = {
        k: {"encoding": "packed_sign", "channels": c}
        for k, c in (("c1.weight", 2), ("c2.weight", 3), ("fc.weight", 40))
    }
    meta = {
        "inputs": [{"name": "x", "shape": [1, 6, 7, 6], "dtype": "float32", "layout": "NCHW"}],
        "outputs": [{"name": "fc", "shape": [1, 5], "dtype": "float32"}],
        "nodes": nodes,
        "encodings": enc,
        "model": {"name": "grouped"},
    }
    return write_model_file(path, meta, t)


def _pin_date(path: Path) -> None:
    """A fixed export date, so regenerating the corpus changes no file that did not change."""
    raw = path.read_bytes()
    js_len, data_off, data_len = struct.unpack_from("<QQQ", raw, 24)
    meta = json.loads(raw[64 : 64 + js_len])
    meta["producer"]["date"] = "2000-01-01T00:00:00+00:00"
    path.write_bytes(lay_out(meta, raw[data_off : data_off + data_len]))


def export_seeds(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, (model, shape)) in enumerate(seed_models().items()):
        torch.manual_seed(i)
        model = randomize_bn(model, i)
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(i))
        path = out / f"{name}.onebit"
        if name == "mixed":  # keeps its add op (the regressions edit it): no residual fusion
            from onebit.export import passes

            saved = passes.FOLDING_PASSES
            passes.FOLDING_PASSES = tuple(p for p in saved if p is not passes.fuse_conv_epilogues)
            try:
                nbytes = onebit.export(model, x, path, model_name=name)
            finally:
                passes.FOLDING_PASSES = saved
        else:  # binary_resnet_e18 and xnornet_resnet_slim carry fused residual adds and relus
            nbytes = onebit.export(model, x, path, model_name=name)
        if nbytes > MAX_SEED_BYTES:
            raise SystemExit(f"{path}: {nbytes} bytes, above the corpus limit of {MAX_SEED_BYTES}")
        _pin_date(path)
        paths.append(path)
    grouped_seed(out / "grouped.onebit")
    paths.append(out / "grouped.onebit")
    return paths


# ----------------------------------------------------------------------------------------------------------
# Hostile files: the seed's JSON edited, the file re-laid with a correct header and checksum.


def lay_out(meta: dict[str, Any] | bytes, data: bytes) -> bytes:
    """A .onebit file around a JSON text and a data section, with a correct header and SHA-256."""
    js = meta if isinstance(meta, bytes) else json.dumps(meta, separators=(",", ":")).encode()
    data_off = (64 + len(js) + 63) // 64 * 64
    header = struct.pack("<8sIIQQQQ16s", b"\x89ONEBIT\n", 1, 0, 64, len(js), data_off, len(data), b"\0" * 16)
    body = header + js + b"\0" * (data_off - 64 - len(js)) + data
    return body + hashlib.sha256(body).digest()


class Seed:
    def __init__(self, path: Path) -> None:
        raw = path.read_bytes()
        js_len, data_off, data_len = struct.unpack_from("<QQQ", raw, 24)
        self.meta = json.loads(raw[64 : 64 + js_len])
        self.data = raw[data_off : data_off + data_len]
        read_model_file(path)  # a valid file to begin with

    def copy(self) -> dict[str, Any]:
        return copy.deepcopy(self.meta)

    def node(self, meta: dict[str, Any], op: str, k: int = 0) -> dict[str, Any]:
        return [n for n in meta["nodes"] if n["op"] == op][k]


def _binary_weight_layer(
    op: str, channels: int, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> bytes:
    """One float layer with packed +-1 weights (binary_weight): a 64 x 64 conv2d with one filter, or a
    dense layer with one output."""
    rng = np.random.default_rng(3)
    rows = 64 * 64 if op == "conv2d" else 1
    weight = _packed(rng, rows, channels).reshape((1, 64, 64, -1) if op == "conv2d" else (1, -1))
    tensors = {"w": weight, "m": np.ones(1, np.float32), "b": np.zeros(1, np.float32)}
    attrs: dict[str, Any] = {"binary_weight": True}
    if op == "conv2d":
        attrs.update(kernel=[64, 64], stride=[1, 1], padding=[0, 0, 0, 0], dilation=[1, 1], groups=1)
    meta = {
        "inputs": [{"name": "x", "shape": list(in_shape)}],
        "outputs": [{"name": "y", "shape": list(out_shape)}],
        "nodes": [
            {
                "op": op,
                "inputs": ["x"],
                "outputs": ["y"],
                "attrs": attrs,
                "params": {"weight": "w", "multiplier": "m", "bias": "b"},
            }  # fmt: skip
        ],
        "encodings": {"w": {"encoding": "packed_sign", "channels": channels}},
    }
    table, data = {}, b""
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).tobytes()
        table[name] = {
            "dtype": arr.dtype.name,
            "shape": list(arr.shape),
            "offset": len(data),
            "nbytes": len(raw),
        }
        data += raw + b"\0" * (-len(raw) % 64)
    meta["tensors"] = table
    return lay_out(meta, data)


def regressions(seeds: dict[str, Seed]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """name -> (file bytes, expectation). Built on the smallest seeds so the corpus stays small."""
    cases: dict[str, tuple[bytes, dict[str, Any]]] = {}

    def add(
        name: str, meta: dict[str, Any] | bytes, data: bytes, expect: str = "format", match: str = ""
    ) -> None:
        cases[name] = (lay_out(meta, data), {"expect": expect, "match": match})

    # grouped: sign, grouped bconv2d (binary / float out), bnot, bmaxpool, bdense (4 KB);
    # scaled: conv2d, xnor_k, maxpool, avgpool; mixed: add, concat, depthwise / grouped conv2d
    grp, scl, mix = seeds["grouped"], seeds["scaled"], seeds["mixed"]
    inp = grp.meta["inputs"][0]["name"]

    def edit(seed: Seed, op: str, k: int = 0, **attrs: Any) -> dict[str, Any]:
        m = seed.copy()
        seed.node(m, op, k).setdefault("attrs", {}).update(attrs)
        return m

    # int32 overflow in the binary convolution's padded geometry
    add(
        "bconv_pad_int32_overflow",
        edit(grp, "bconv2d", padding=[2**31 - 1] * 4, dilation=[2**29] * 2),
        grp.data,
        match="padding",
    )
    add("bconv_dilation_2e29", edit(grp, "bconv2d", dilation=[2**29, 2**29]), grp.data, match="dilation")
    add("bconv_pad_2e31", edit(grp, "bconv2d", padding=[2**31] * 4), grp.data, match="padding")
    add("bconv_pad_2e63", edit(grp, "bconv2d", padding=[2**63] * 4), grp.data, match="padding")
    # within the schema's ranges but past the dilated kernel extent
    add("bconv_pad_past_extent", edit(grp, "bconv2d", padding=[4096] * 4), grp.data, match="padding")
    # the largest geometry the schema allows: padded copy far above the memory cap, or rejected
    add(
        "bconv_max_dilation_pad",
        edit(grp, "bconv2d", dilation=[64, 64], padding=[128, 128, 128, 128]),
        grp.data,
        expect="clean",
    )
    # negative (and zero) dilation in xnor_k
    add("xnor_k_negative_dilation", edit(scl, "xnor_k", dilation=[-1, 2]), scl.data, match="dilation")
    add("xnor_k_zero_dilation", edit(scl, "xnor_k", dilation=[0, 0]), scl.data, match="dilation")
    # conv zero-fills: padding 12000 with stride 10^6 (4.6 GB), padding 10^5 (320 GB)
    add(
        "conv_pad12000_stride1e6",
        edit(scl, "conv2d", padding=[12000] * 4, stride=[10**6] * 2),
        scl.data,
        match="attribute",
    )
    add("conv_pad1e5", edit(scl, "conv2d", padding=[10**5] * 4), scl.data, match="padding")
    add("bconv_pad1e5", edit(grp, "bconv2d", padding=[10**5] * 4), grp.data, match="padding")
    add(
        "bconv_pad12000_stride1e6",
        edit(grp, "bconv2d", padding=[12000] * 4, stride=[10**6] * 2),
        grp.data,
        match="attribute",
    )
    # pools with ceil_mode and padding 600
    add(
        "avgpool_ceil_pad600",
        edit(scl, "avgpool", padding=[600] * 4, ceil_mode=True),
        scl.data,
        match="padding",
    )
    add(
        "avgpool_ceil_pad600_cip",
        edit(scl, "avgpool", padding=[600] * 4, ceil_mode=True, count_include_pad=True),
        scl.data,
        match="padding",
    )
    add(
        "maxpool_ceil_pad600",
        edit(scl, "maxpool", padding=[600] * 4, ceil_mode=True),
        scl.data,
        match="padding",
    )
    add(
        "bmaxpool_ceil_pad600",
        edit(grp, "bmaxpool", padding=[600] * 4, ceil_mode=True),
        grp.data,
        match="padding",
    )
    # input shapes of 10^9 x 10^9 (and 10^9 channels, 10^9 batch)
    for seed, name in ((grp, "input_1e9x1e9"), (mix, "mixed_input_1e9x1e9")):
        m = seed.copy()
        m["inputs"][0]["shape"][2:] = [10**9, 10**9]
        add(name, m, seed.data, match="shape")
    m = grp.copy()
    m["inputs"][0]["shape"][1] = 10**9
    add("input_channels_1e9", m, grp.data, match="shape")
    m = grp.copy()
    m["inputs"][0]["shape"][0] = 10**9  # the batch is only a record: loads
    add("input_batch_1e9", m, grp.data, expect="clean")
    # a graph that redefines its input, or any value twice
    m = grp.copy()
    m["nodes"][1]["outputs"] = [inp]
    add("redefine_input", m, grp.data, match="redefines")
    m = grp.copy()
    m["nodes"][2]["outputs"] = list(m["nodes"][1]["outputs"])
    add("redefine_value", m, grp.data, match="redefines")
    # channel mismatches between producer and consumer
    m = grp.copy()
    grp.node(m, "bconv2d")["attrs"]["in_channels"] = 8
    add("bconv_in_channels_mismatch", m, grp.data, match="channels")
    m = grp.copy()
    grp.node(m, "bdense")["attrs"]["in_channels"] = 41
    add("bdense_features_mismatch", m, grp.data, match="in_channels")
    m = grp.copy()
    grp.node(m, "mul_map")["inputs"].reverse()  # the map must have one channel
    add("mul_map_channels", m, grp.data, match="channel")
    m = grp.copy()
    m["nodes"].insert(4, {"op": "concat", "inputs": ["s0", "p1"], "outputs": ["cat"]})
    add("concat_spatial_mismatch", m, grp.data, match="shape")
    m = mix.copy()
    a = mix.node(m, "add")
    a["inputs"] = [a["inputs"][0], m["inputs"][0]["name"]]
    add("add_channel_mismatch", m, mix.data, match="shape")
    m = mix.copy()
    mix.node(m, "conv2d", 1)["inputs"] = [mix.node(m, "add")["outputs"][0]]  # depthwise conv fed 16, not 32
    add("conv_weight_channels_mismatch", m, mix.data, match="channels")
    # bad groups
    for g, tag in ((0, "0"), (-1, "neg"), (5, "5"), (2**20 + 1, "huge"), (12, "12")):
        add(f"bconv_groups_{tag}", edit(grp, "bconv2d", 1, groups=g), grp.data, match="groups")
    # fused epilogues (a conv's residual input and activation)
    e18 = seeds["binary_resnet_e18"]
    fused = [n for n in e18.meta["nodes"] if n["op"] == "bconv2d" and len(n["inputs"]) == 2]
    assert fused, "binary_resnet_e18's seed should carry fused residual adds"
    m = e18.copy()
    k = e18.meta["nodes"].index(fused[0])
    m["nodes"][k]["inputs"][1] = m["inputs"][0]["name"]  # the 3-channel input as the residual
    add("residual_shape_mismatch", m, e18.data, match="residual input is")
    m = e18.copy()
    m["nodes"][k]["inputs"].append(m["nodes"][k]["inputs"][1])
    add("residual_three_inputs", m, e18.data, match="inputs, has 3")
    m = e18.copy()
    m["nodes"][k]["attrs"]["activation"] = "prelu"
    add("activation_unknown", m, e18.data, match="activation")
    bits = next(n for n in grp.meta["nodes"] if n["op"] == "bconv2d" and n["attrs"].get("output") == "binary")
    m = grp.copy()
    m["nodes"][grp.meta["nodes"].index(bits)]["attrs"]["activation"] = "relu"
    add("activation_on_bits_output", m, grp.data, match="needs a float output")
    add("conv_groups_7", edit(mix, "conv2d", 2, groups=7), mix.data, match="groups")
    add("conv_groups_0", edit(mix, "conv2d", 2, groups=0), mix.data, match="groups")
    # stride 0 (and negative)
    add("bconv_stride0", edit(grp, "bconv2d", stride=[0, 1]), grp.data, match="stride")
    add("bmaxpool_stride0", edit(grp, "bmaxpool", stride=[1, 0]), grp.data, match="stride")
    add("maxpool_stride0", edit(scl, "maxpool", stride=[1, 0]), scl.data, match="stride")
    add("avgpool_stride0", edit(scl, "avgpool", stride=[0, 0]), scl.data, match="stride")
    add("xnor_k_stride_neg", edit(scl, "xnor_k", stride=[-1, -1]), scl.data, match="stride")
    add("conv_stride0", edit(scl, "conv2d", stride=[0, 1]), scl.data, match="stride")
    # wrong types in the JSON fields: strings / floats for ints, nested junk (fuzz_engine --type-sweep
    # replaces every field of every seed; these are the committed representatives)
    junk = {"str": "3", "float": 3.5, "bool": True, "null": None, "nested": [[{"a": [1]}]], "obj": {"x": 1}}
    first = next(iter(grp.meta["tensors"]))
    for tag, v in junk.items():
        add(f"type_kernel_{tag}", edit(grp, "bconv2d", kernel=v), grp.data, match="kernel")
        add(f"type_kernel_elem_{tag}", edit(grp, "bconv2d", kernel=[v, 3]), grp.data, match="kernel")
        m = grp.copy()
        m["inputs"][0]["shape"][2] = v
        add(f"type_input_shape_{tag}", m, grp.data, match="shape")
        m = grp.copy()
        m["inputs"] = v
        add(f"type_inputs_{tag}", m, grp.data, match="input")
        m = grp.copy()
        m["tensors"][first]["offset"] = v
        add(f"type_tensor_offset_{tag}", m, grp.data, match="offset")
        m = grp.copy()
        m["tensors"][first]["shape"] = [v]
        add(f"type_tensor_shape_{tag}", m, grp.data, match="shape")
        m = grp.copy()
        m["tensors"][first]["dtype"] = v
        add(f"type_tensor_dtype_{tag}", m, grp.data, match="dtype")
        m = grp.copy()
        m["nodes"][0]["op"] = v
        add(f"type_op_{tag}", m, grp.data, match="op")
        m = grp.copy()
        m["nodes"] = v if not isinstance(v, list) else [v]
        add(f"type_nodes_{tag}", m, grp.data, match="node")
        m = grp.copy()
        m["nodes"][1]["inputs"] = [v]
        add(f"type_node_input_{tag}", m, grp.data, match="'3'" if tag == "str" else "input")
        m = grp.copy()
        m["nodes"][1]["params"]["weight"] = v
        add(f"type_param_{tag}", m, grp.data, match="'3'" if tag == "str" else "param")
        m = grp.copy()
        m["encodings"]["c1.weight"] = v if isinstance(v, dict) else {"encoding": "packed_sign", "channels": v}
        add(f"type_encoding_{tag}", m, grp.data, match="channels" if not isinstance(v, dict) else "encoding")
    add("type_in_channels_float", edit(grp, "bconv2d", in_channels=6.5), grp.data, match="in_channels")
    add("type_in_channels_2e63", edit(grp, "bconv2d", in_channels=2**63), grp.data, match="in_channels")
    add("type_pad_value_str", edit(grp, "bconv2d", pad_value="1"), grp.data, match="pad_value")
    add("type_pad_value_half", edit(grp, "bconv2d", pad_value=0.5), grp.data, match="pad_value")
    add("type_ceil_mode_int", edit(grp, "bmaxpool", ceil_mode=1), grp.data, match="ceil_mode")
    add("type_output_enum_junk", edit(grp, "bconv2d", output="bits"), grp.data, match="output")
    add("type_clip_min_above_max", edit(grp, "clip", min=3.0, max=-3.0), grp.data, match="min")
    add("type_unknown_attr", edit(grp, "clip", scale=1.0), grp.data, match="unknown attribute")
    add("type_clip_1e308", edit(grp, "clip", min=-1e308, max=1e308), grp.data, expect="clean")
    add("type_meta_array", b"[1,2,3]", grp.data, match="object")
    add("type_meta_deep", b"[" * 200 + b"]" * 200, grp.data, match="JSON")
    add("type_meta_not_utf8", b'{"nodes":"\xff\xfe"}', grp.data, match="JSON")
    text = json.dumps(grp.meta, separators=(",", ":"))
    add(
        "json_duplicate_key",
        text.replace('{"inputs"', '{"nodes":[],"inputs"', 1).encode(),
        grp.data,
        match="JSON",
    )
    add("json_nan", text.replace('"min":-1.5', '"min":NaN', 1).encode(), grp.data, match="JSON")
    add("json_huge_exponent", text.replace('"min":-1.5', '"min":-1e400', 1).encode(), grp.data, match="range")
    # unknown ops, and ops renamed to other registry ops
    m = grp.copy()
    m["nodes"][2]["op"] = "conv3d"
    add("unknown_op", m, grp.data, match="unknown op")
    m = grp.copy()
    grp.node(m, "bconv2d")["op"] = "conv2d"
    add("op_bconv_as_conv", m, grp.data)
    m = grp.copy()
    grp.node(m, "bdense")["op"] = "dense"
    add("op_bdense_as_dense", m, grp.data)
    m = mix.copy()
    mix.node(m, "add")["op"] = "mul_map"
    add("op_add_as_mul_map", m, mix.data)
    # cycles, self-loops, reads before definition
    m = grp.copy()
    m["nodes"][1]["inputs"] = [m["nodes"][3]["outputs"][0]]
    add("read_before_definition", m, grp.data, match="before it is defined")
    m = grp.copy()
    m["nodes"][1]["inputs"] = list(m["nodes"][1]["outputs"])
    add("self_loop", m, grp.data, match="before it is defined")
    m = grp.copy()
    m["nodes"][1]["inputs"], m["nodes"][2]["inputs"] = (
        list(m["nodes"][2]["outputs"]),
        list(m["nodes"][1]["outputs"]),
    )
    add("cycle_of_two", m, grp.data, match="before it is defined")
    m = grp.copy()
    m["outputs"][0]["name"] = "nowhere"
    add("output_never_computed", m, grp.data, match="never computed")
    m = grp.copy()
    m["outputs"][0]["name"] = inp
    add("output_is_input", m, grp.data, match="input")
    m = grp.copy()
    m["outputs"][0]["shape"] = [1, 6]
    add("output_shape_wrong", m, grp.data, match="output shape")
    # huge concat fan-in (names kept short: 10^5 inputs are 500 KB of JSON as it is)
    for n, tag, expect in ((100_000, "1e5", "format"), (4097, "4097", "format"), (4096, "4096", "clean")):
        m = grp.copy()
        m["nodes"].insert(1, {"op": "concat", "inputs": [inp] * n, "outputs": ["cat"]})
        add(f"concat_fanin_{tag}", m, grp.data, expect=expect, match="inputs" if expect == "format" else "")
    # tensors whose bytes lie outside the file
    big = max(grp.meta["tensors"], key=lambda k: grp.meta["tensors"][k]["nbytes"])
    for tag, off in (("end", len(grp.data)), ("2e62", 2**62), ("2e63", 2**63), ("neg", -64)):
        m = grp.copy()
        m["tensors"][big]["offset"] = off
        add(f"tensor_offset_{tag}", m, grp.data, match="offset" if tag in ("2e63", "neg") else "outside")
    add("tensor_data_truncated", grp.copy(), grp.data[: len(grp.data) // 2], match="outside")
    m = grp.copy()
    t = m["tensors"][big]
    t["shape"] = [2**20] * 3
    t["nbytes"] = 4 * 2**60
    add("tensor_shape_overflow", m, grp.data, match="elements")
    m = grp.copy()
    t = m["tensors"][big]
    t["shape"] = [t["shape"][0] * 1000] + t["shape"][1:]
    t["nbytes"] *= 1000
    add("tensor_nbytes_past_end", m, grp.data, match="outside")
    m = grp.copy()
    m["tensors"][big]["offset"] = 32
    add("tensor_offset_unaligned", m, grp.data, match="aligned")
    m = grp.copy()
    m["tensors"][big]["nbytes"] += 8
    add("tensor_nbytes_wrong", m, grp.data, match="bytes do not hold")
    # packed weights with padding bits set (2 and 40 channels: bits 2..63 / 40..63 must be 0)
    for name, op in (("c1.weight", "bconv2d"), ("fc.weight", "bdense")):
        spec = grp.meta["tensors"][name]
        data = bytearray(grp.data)
        data[spec["offset"] + spec["nbytes"] - 1] |= 0x80  # bit 63 of the last row's last word
        add(f"packed_padding_bits_{op}", grp.copy(), bytes(data), match="padding bits")
    # encodings that lie about the channel count
    m = grp.copy()
    m["encodings"]["c1.weight"]["channels"] = 66
    add("packed_channels_lie", m, grp.data, match="packed_sign")
    m = grp.copy()
    m["encodings"]["c1.weight"]["channels"] = 0
    add("packed_channels_zero", m, grp.data, match="channels")
    m = grp.copy()
    m["encodings"]["c1.threshold"] = {"encoding": "packed_sign", "channels": 6}
    add("packed_wrong_dtype", m, grp.data, match="packed_sign")
    # scratch the memory cap did not count (engine bugs the fuzzer found): conv2d's im2col chunk per
    # thread (64 x 64 x 16 binary-weight kernel, 10 x 10 output: two chunks, two threads: 56 MiB,
    # counted as 32), and the GEMM's packed weights at batch > 4 (one output, 2^19 binary weights:
    # 64 MiB, counted as 0)
    cases["conv2d_scratch_two_threads"] = (
        _binary_weight_layer("conv2d", 16, (1, 16, 73, 73), (1, 1, 10, 10)),
        {"expect": "memory", "match": "memory cap", "threads": 2, "cap_mib": 40},
    )
    cases["dense_packed_weights_batch5"] = (
        _binary_weight_layer("dense", 1 << 19, (1, 1 << 19), (1, 1)),
        {"expect": "memory", "match": "memory cap", "batch": 5, "cap_mib": 16},
    )
    # header damage with a correct checksum
    good = lay_out(grp.meta, grp.data)
    for tag, off, val in (
        ("version", 8, struct.pack("<I", 2)),
        ("json_len", 24, struct.pack("<Q", 2**63)),
        ("data_off", 32, struct.pack("<Q", 65)),
        ("data_len", 40, struct.pack("<Q", 2**64 - 1)),
    ):
        body = bytearray(good[:-32])
        body[off : off + len(val)] = val
        cases[f"header_{tag}"] = (
            bytes(body) + hashlib.sha256(body).digest(),
            {"expect": "format", "match": ""},
        )
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "corpus")
    args = ap.parse_args()
    seeds = export_seeds(args.out / "seeds")
    loaded = {p.stem: Seed(p) for p in seeds}
    regress = args.out / "regress"
    regress.mkdir(parents=True, exist_ok=True)
    for old in regress.glob("*.onebit"):
        old.unlink()
    expected = {}
    for name, (raw, expect) in sorted(regressions(loaded).items()):
        (regress / f"{name}.onebit").write_bytes(raw)
        expected[f"{name}.onebit"] = expect
    (regress / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    total = sum(p.stat().st_size for p in (args.out).rglob("*.onebit"))
    print(f"{len(seeds)} seeds, {len(expected)} regression files, {total} bytes in {args.out}")
    for p in seeds:
        print(f"  {p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

"""Load a ``.onebit`` file and run it with the C++ engine (numpy in, numpy out; no torch).

``model = onebit.runtime.load("model.onebit"); y = model.run(x)`` with ``x`` a
float32 NCHW batch like PyTorch's. At load, weights are unpacked from the file
and re-packed once into the micro-kernels' layout; at the first call for a
batch size, every intermediate value gets a buffer, buffers whose values are
dead are reused, and later calls with that batch size allocate nothing but
the returned output.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from onebit import _C
from onebit.runtime import kernels as K
from onebit.runtime import reference as R
from onebit.runtime.format import ModelFile, ModelFormatError, read_model_file

__all__ = ["Model", "load"]

_ACT_NONE = "none"
#: ops whose output may alias an input that is not used afterwards
_INPLACE_OPS = {"relu", "affine", "prelu", "add", "bnot", "scale", "clip", "mul_map"}


def _tblr(padding: list[int]) -> tuple[int, int, int, int]:
    """Engine graphs store (left, right, top, bottom); the kernels take (top, bottom, left, right)."""
    left, right, top, bottom = padding
    return (top, bottom, left, right)


@dataclass
class _Step:
    node: dict[str, Any]
    run: Callable[[list[np.ndarray], np.ndarray], None]
    out_shape: Callable[[int], tuple[int, ...]]
    out_dtype: type


class Model:
    """A loaded .onebit model. Use :func:`load` to create one."""

    def __init__(self, mf: ModelFile, path: str, num_threads: int | None = None) -> None:
        self.path = path
        self.meta = mf.meta
        self._mf = mf
        self.num_threads = num_threads or K.get_num_threads()
        spec_in = mf.meta["inputs"]
        spec_out = mf.meta["outputs"]
        if len(spec_in) != 1 or len(spec_out) != 1:
            raise ModelFormatError(f"{path}: the engine runs models with one input and one output")
        self.input_name = spec_in[0]["name"]
        self.input_shape = tuple(spec_in[0]["shape"])  # NCHW with the export batch size
        self.output_name = spec_out[0]["name"]
        self.output_shape = tuple(spec_out[0]["shape"])
        self._values: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        self._steps = [self._compile(node) for node in mf.nodes]
        self._plans: dict[int, dict[str, Any]] = {}
        self.layer_times: dict[int, float] = {}

    # ------------------------------------------------------------------ params

    def _tensor(self, name: str) -> np.ndarray:
        arr = self._mf.tensors[name]
        enc = self.meta.get("encodings", {}).get(name, {})
        if enc.get("encoding") == "packed_sign":
            channels = int(enc["channels"])
            if arr.ndim == 0 or arr.shape[-1] != (channels + 63) // 64:
                raise ModelFormatError(
                    f"{self.path}: packed tensor {name!r} does not hold {channels} channels"
                )
            return K.unpack_bits(np.ascontiguousarray(arr), channels)
        if enc.get("encoding") == "fp16" or arr.dtype == np.float16:
            return arr.astype(np.float32)
        return np.ascontiguousarray(arr)

    def _param(self, node: dict[str, Any], role: str) -> np.ndarray:
        name = node["params"].get(role)
        if name is None:
            raise ModelFormatError(
                f"{self.path}: {node['op']} node {node['outputs'][0]} lacks its {role!r} tensor"
            )
        return self._tensor(name)

    # ------------------------------------------------------------------ compile

    def _compile(self, node: dict[str, Any]) -> _Step:
        op = node["op"]
        fn = getattr(self, f"_compile_{op}", None)
        if fn is None:
            if op not in R.OPS:
                raise ModelFormatError(f"{self.path}: unknown op {op!r} (file made by a newer onebit?)")
            fn = self._compile_reference
        try:
            return fn(node)
        except ModelFormatError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ModelFormatError(f"{self.path}: invalid {op} node {node['outputs'][0]}: {e}") from None

    def _shape(self, name: str) -> tuple[int, ...]:
        if name == self.input_name:
            n, *rest = self.input_shape
            return (n, rest[1], rest[2], rest[0]) if len(rest) == 3 else (n, *rest)
        return self._values[name][0]

    def _declare(
        self, node: dict[str, Any], shape: tuple[int, ...], dtype: type
    ) -> Callable[[int], tuple[int, ...]]:
        shape = tuple(int(s) for s in shape)
        self._values[node["outputs"][0]] = (shape, np.dtype(dtype))
        return lambda n: (n, *shape[1:])

    def _compile_reference(self, node: dict[str, Any]) -> _Step:
        """Ops without a dedicated kernel: the numpy reference implementation."""
        params = {role: self._tensor(name) for role, name in node["params"].items()}
        fn = R.OPS[node["op"]]
        binary_in = [
            self._values.get(i, (None, np.dtype(np.float32)))[1] == np.uint64 for i in node["inputs"]
        ]
        channels = [self._channels.get(i) for i in node["inputs"]]
        probe = self._probe_shape(node, fn, params)
        out_binary = node["op"] in ("concat",) and all(binary_in)

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            args = [K.unpack_bits(x, c) if b else x for x, b, c in zip(ins, binary_in, channels, strict=True)]
            y = fn(*args, node, params)
            if out_binary:
                _C.pack_f32(
                    np.ascontiguousarray(y, dtype=np.float32), y.shape[-1], None, out, self.num_threads
                )
            else:
                np.copyto(out, y.reshape(out.shape))

        if out_binary:
            self._channels[node["outputs"][0]] = probe[-1]
            shape = (*probe[:-1], (probe[-1] + 63) // 64)
            return _Step(node, run, self._declare(node, shape, np.uint64), np.uint64)
        return _Step(node, run, self._declare(node, probe, np.float32), np.float32)

    def _probe_shape(
        self, node: dict[str, Any], fn: Callable, params: dict[str, np.ndarray]
    ) -> tuple[int, ...]:
        """Output shape of a reference op, found by running it on zeros of batch 1."""
        args = []
        for i in node["inputs"]:
            shape = self._shape(i)
            if self._values.get(i, (None, np.dtype(np.float32)))[1] == np.uint64:
                shape = (*shape[:-1], self._channels[i])
            args.append(np.zeros((1, *shape[1:]), np.float32))
        return tuple(fn(*args, node, params).shape)

    @property
    def _channels(self) -> dict[str, int]:
        if not hasattr(self, "_ch"):
            self._ch: dict[str, int] = {}
        return self._ch

    def _compile_sign(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]
        shape = self._shape(src)
        c = shape[-1]
        thr = np.ascontiguousarray(self._param(node, "threshold"), dtype=np.float32).reshape(c)
        mask = None
        if "flip" in node["params"]:
            flip = self._param(node, "flip").reshape(c).astype(bool)
            if flip.any():
                # the kernel sets the bit where x < t; on flipped channels +1 means x <= t, i.e.
                # x < nextafter(t): pack with that threshold and invert those bits afterwards
                thr = np.where(flip, np.nextafter(thr, np.float32(np.inf)), thr).astype(np.float32)
                mask = self._word_mask(flip)
        zero = not thr.any()
        self._channels[node["outputs"][0]] = c

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            _C.pack_f32(ins[0], c, None if zero else thr, out, self.num_threads)
            if mask is not None:
                np.bitwise_xor(out, mask, out=out)

        return _Step(node, run, self._declare(node, (*shape[:-1], (c + 63) // 64), np.uint64), np.uint64)

    @staticmethod
    def _word_mask(channels: np.ndarray) -> np.ndarray:
        """Packed words with the bits of the selected channels set."""
        c = channels.shape[0]
        mask = np.zeros((c + 63) // 64, np.uint64)
        for ch in np.flatnonzero(channels):
            mask[ch // 64] |= np.uint64(1) << np.uint64(ch % 64)
        return mask

    def _compile_bnot(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]
        c = self._channels[src]
        mask = self._word_mask(self._param(node, "mask").astype(bool))
        self._channels[node["outputs"][0]] = c

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            np.bitwise_xor(ins[0], mask, out=out)

        return _Step(node, run, self._declare(node, self._shape(src), np.uint64), np.uint64)

    def _compile_unpack(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]
        c = self._channels[src]
        shape = self._shape(src)

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            _C.unpack_f32(ins[0], c, out)

        return _Step(node, run, self._declare(node, (*shape[:-1], c), np.float32), np.float32)

    def _bconv_common(self, node: dict[str, Any], dense: bool) -> _Step:
        a = node["attrs"]
        (src,) = node["inputs"]
        in_ch = int(a["in_channels"])
        shape = self._shape(src)
        name = node["params"]["weight"]
        if self.meta.get("encodings", {}).get(name, {}).get("encoding") == "packed_sign":
            bits = np.ascontiguousarray(self._mf.tensors[name])  # already 1 bit per weight
            if dense:
                bits = bits.reshape(bits.shape[0], 1, 1, bits.shape[-1])
            try:
                pw = K.pack_weights_from_bits(bits, in_ch)
            except ValueError as e:
                raise ModelFormatError(f"{self.path}: weights of {node['outputs'][0]}: {e}") from None
        else:
            w = self._tensor(name)
            if dense:
                w = w.reshape(w.shape[0], 1, 1, w.shape[-1])
            pw = K.pack_weights(np.ascontiguousarray(w, dtype=np.float32), layout="OHWI")
        oc = int(pw.out_channels)
        bits = a.get("output", "float") == "binary"
        mult = bias = thr = flip = None
        if bits:
            thr = np.ascontiguousarray(self._param(node, "threshold"), dtype=np.int32)
            flip = np.ascontiguousarray(self._param(node, "direction") < 0, dtype=np.uint8)
            self._channels[node["outputs"][0]] = oc
        else:
            mult = np.ascontiguousarray(self._param(node, "multiplier"), dtype=np.float32)
            bias = np.ascontiguousarray(self._param(node, "bias"), dtype=np.float32)
        nt = self.num_threads
        if dense:  # a dense layer is a 1x1 convolution over (1, N, 1, C)
            s, d, pad, pad_value = (1, 1), (1, 1), (0, 0, 0, 0), 1
            out_shape = (shape[0], (oc + 63) // 64 if bits else oc)
        else:
            s, d, pad = tuple(a["stride"]), tuple(a["dilation"]), _tblr(a["padding"])
            pad_value = int(a["pad_value"])
            k = a["kernel"]
            oh = K.conv_output_size(shape[1], k[0], s[0], pad[0], pad[1], d[0])
            ow = K.conv_output_size(shape[2], k[1], s[1], pad[2], pad[3], d[1])
            out_shape = (shape[0], oh, ow, (oc + 63) // 64 if bits else oc)

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            x = ins[0]
            if dense:
                x = x.reshape(1, x.shape[0], 1, x.shape[1])
                out = out.reshape(1, out.shape[0], 1, out.shape[1])
            _C.bconv2d(
                x, pw, in_ch, s, pad, d, pad_value, bits, _ACT_NONE, mult, bias, None, thr, flip, out, nt
            )

        dtype = np.uint64 if bits else np.float32
        return _Step(node, run, self._declare(node, out_shape, dtype), dtype)

    def _compile_bconv2d(self, node: dict[str, Any]) -> _Step:
        return self._bconv_common(node, dense=False)

    def _compile_bdense(self, node: dict[str, Any]) -> _Step:
        return self._bconv_common(node, dense=True)

    def _scaled_weight(self, node: dict[str, Any]) -> np.ndarray:
        """Float weights with the per-output-channel multiplier folded in (no copy when it is 1)."""
        w = self._param(node, "weight")
        mult = self._param(node, "multiplier")
        if not np.all(mult == 1):
            w = w * mult.reshape(-1, *([1] * (w.ndim - 1)))
        return np.ascontiguousarray(w, dtype=np.float32)

    def _compile_conv2d(self, node: dict[str, Any]) -> _Step:
        a = node["attrs"]
        groups = int(a.get("groups", 1))
        (src,) = node["inputs"]
        shape = self._shape(src)
        w = self._scaled_weight(node)
        if groups != 1:
            return self._grouped_conv(node, w, shape, groups)
        bias = np.ascontiguousarray(self._param(node, "bias"), dtype=np.float32)
        s, d, pad = tuple(a["stride"]), tuple(a["dilation"]), _tblr(a["padding"])
        k = a["kernel"]
        oh = K.conv_output_size(shape[1], k[0], s[0], pad[0], pad[1], d[0])
        ow = K.conv_output_size(shape[2], k[1], s[1], pad[2], pad[3], d[1])

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            _C.conv2d_f32(ins[0], w, bias, s, pad, d, _ACT_NONE, None, out, self.num_threads)

        return _Step(node, run, self._declare(node, (shape[0], oh, ow, w.shape[0]), np.float32), np.float32)

    def _grouped_conv(
        self, node: dict[str, Any], w: np.ndarray, shape: tuple[int, ...], groups: int
    ) -> _Step:
        a = node["attrs"]
        bias = np.ascontiguousarray(self._param(node, "bias"), dtype=np.float32)
        s, d, pad = tuple(a["stride"]), tuple(a["dilation"]), _tblr(a["padding"])
        k = a["kernel"]
        oh = K.conv_output_size(shape[1], k[0], s[0], pad[0], pad[1], d[0])
        ow = K.conv_output_size(shape[2], k[1], s[1], pad[2], pad[3], d[1])
        oc = w.shape[0]
        if groups == shape[3] == oc:  # depthwise: the direct per-channel kernel
            w_hwc = np.ascontiguousarray(w[:, :, :, 0].transpose(1, 2, 0))

            def run(ins: list[np.ndarray], out: np.ndarray) -> None:
                _C.depthwise_conv2d_f32(
                    ins[0], w_hwc, bias, s, pad, d, _ACT_NONE, None, out, self.num_threads
                )

        else:

            def run(ins: list[np.ndarray], out: np.ndarray) -> None:
                K.conv2d_f32(
                    ins[0],
                    w,
                    bias,
                    stride=s,
                    padding=pad,
                    dilation=d,
                    groups=groups,
                    out=out,
                    num_threads=self.num_threads,
                )

        return _Step(node, run, self._declare(node, (shape[0], oh, ow, oc), np.float32), np.float32)

    def _compile_dense(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]
        shape = self._shape(src)
        w = self._scaled_weight(node)
        bias = np.ascontiguousarray(self._param(node, "bias"), dtype=np.float32)

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            _C.dense_f32(ins[0], w, bias, _ACT_NONE, None, out, self.num_threads)

        return _Step(node, run, self._declare(node, (shape[0], w.shape[0]), np.float32), np.float32)

    def _compile_affine(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]
        scale = np.ascontiguousarray(self._param(node, "scale"), dtype=np.float32)
        shift = np.ascontiguousarray(self._param(node, "shift"), dtype=np.float32)
        unit = bool(np.all(scale == 1))

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            if unit:
                np.add(ins[0], shift, out=out)
            else:
                np.multiply(ins[0], scale, out=out)
                out += shift

        return _Step(node, run, self._declare(node, self._shape(src), np.float32), np.float32)

    def _compile_relu(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            np.maximum(ins[0], 0, out=out)

        return _Step(node, run, self._declare(node, self._shape(src), np.float32), np.float32)

    def _compile_prelu(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]
        slope = np.ascontiguousarray(self._param(node, "slope"), dtype=np.float32)

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            # out may alias the input (planned in place): scale the negative entries only
            x = ins[0]
            if out is not x:
                np.copyto(out, x)
            np.multiply(out, slope, out=out, where=out < 0)

        return _Step(node, run, self._declare(node, self._shape(src), np.float32), np.float32)

    def _compile_add(self, node: dict[str, Any]) -> _Step:
        a, b = node["inputs"]

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            np.add(ins[0], ins[1], out=out)

        return _Step(node, run, self._declare(node, self._shape(a), np.float32), np.float32)

    def _compile_concat(self, node: dict[str, Any]) -> _Step:
        if any(self._values.get(i, (None, np.dtype(np.float32)))[1] == np.uint64 for i in node["inputs"]):
            return self._compile_reference(node)
        shapes = [self._shape(i) for i in node["inputs"]]
        offs = np.cumsum([0] + [s[-1] for s in shapes])

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            for x, lo, hi in zip(ins, offs[:-1], offs[1:], strict=True):
                out[..., lo:hi] = x

        return _Step(node, run, self._declare(node, (*shapes[0][:-1], int(offs[-1])), np.float32), np.float32)

    def _pool_geometry(self, node: dict[str, Any], shape: tuple[int, ...]) -> tuple:
        """Kernel, stride, (top, bottom, left, right) padding and output size of a pool.

        ``ceil_mode`` windows that overhang the bottom/right edge become extra padding:
        the kernels ignore padded positions for max-pools, and for average pools
        without ``count_include_pad`` (the only ceil_mode average pools this path accepts).
        """
        a = node["attrs"]
        k, s, pad = tuple(a["kernel"]), tuple(a["stride"]), _tblr(a["padding"])
        oh = K.conv_output_size(shape[1], k[0], s[0], pad[0], pad[1])
        ow = K.conv_output_size(shape[2], k[1], s[1], pad[2], pad[3])
        if a.get("ceil_mode"):
            oh = R._pool_out(shape[1], k[0], s[0], pad[0], pad[1], True)
            ow = R._pool_out(shape[2], k[1], s[1], pad[2], pad[3], True)
            extra_b = max(0, (oh - 1) * s[0] + k[0] - (shape[1] + pad[0] + pad[1]))
            extra_r = max(0, (ow - 1) * s[1] + k[1] - (shape[2] + pad[2] + pad[3]))
            pad = (pad[0], pad[1] + extra_b, pad[2], pad[3] + extra_r)
        return k, s, pad, oh, ow

    @staticmethod
    def _pool_on_kernel(node: dict[str, Any]) -> bool:
        a = node["attrs"]
        if not a.get("ceil_mode"):
            return True
        if node["op"] == "avgpool":
            return not any(a["padding"]) or not a.get("count_include_pad", True)
        return True

    def _compile_maxpool(self, node: dict[str, Any]) -> _Step:
        if not self._pool_on_kernel(node):
            return self._compile_reference(node)
        (src,) = node["inputs"]
        shape = self._shape(src)
        k, s, pad, oh, ow = self._pool_geometry(node, shape)

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            _C.maxpool_f32(ins[0], k, s, pad, out, self.num_threads)

        return _Step(node, run, self._declare(node, (shape[0], oh, ow, shape[3]), np.float32), np.float32)

    def _compile_avgpool(self, node: dict[str, Any]) -> _Step:
        if not self._pool_on_kernel(node):
            return self._compile_reference(node)
        (src,) = node["inputs"]
        shape = self._shape(src)
        k, s, pad, oh, ow = self._pool_geometry(node, shape)
        # with ceil_mode the overhang is padding and must not count (see _pool_geometry)
        cip = bool(node["attrs"].get("count_include_pad", True)) and not node["attrs"].get("ceil_mode")

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            _C.avgpool_f32(ins[0], k, s, pad, cip, out, self.num_threads)

        return _Step(node, run, self._declare(node, (shape[0], oh, ow, shape[3]), np.float32), np.float32)

    def _compile_bmaxpool(self, node: dict[str, Any]) -> _Step:
        if not self._pool_on_kernel(node):
            return self._compile_reference(node)
        (src,) = node["inputs"]
        shape = self._shape(src)
        c = self._channels[src]
        k, s, pad, oh, ow = self._pool_geometry(node, shape)
        self._channels[node["outputs"][0]] = c

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            _C.maxpool_packed(ins[0], c, k, s, pad, out, self.num_threads)

        return _Step(node, run, self._declare(node, (shape[0], oh, ow, shape[3]), np.uint64), np.uint64)

    def _compile_global_avgpool(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]
        shape = self._shape(src)

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            np.mean(ins[0], axis=(1, 2), keepdims=True, out=out)

        return _Step(node, run, self._declare(node, (shape[0], 1, 1, shape[3]), np.float32), np.float32)

    def _compile_flatten(self, node: dict[str, Any]) -> _Step:
        (src,) = node["inputs"]
        shape = self._shape(src)
        if self._values.get(src, (None, np.dtype(np.float32)))[1] == np.uint64:
            c = self._channels[src]
            n_feat = int(np.prod(shape[1:-1])) * c
            self._channels[node["outputs"][0]] = n_feat
            words = (n_feat + 63) // 64
            if c % 64 == 0:  # whole words per pixel: flattening the packed array is a reshape

                def run_bits(ins: list[np.ndarray], out: np.ndarray) -> None:
                    np.copyto(out, ins[0].reshape(out.shape))

            else:  # re-pack across pixel boundaries

                def run_bits(ins: list[np.ndarray], out: np.ndarray) -> None:
                    x = ins[0]
                    signs = np.empty((*x.shape[:-1], c), np.float32)
                    _C.unpack_f32(x, c, signs)
                    _C.pack_f32(signs.reshape(x.shape[0], n_feat), n_feat, None, out, self.num_threads)

            return _Step(node, run_bits, self._declare(node, (shape[0], words), np.uint64), np.uint64)

        def run(ins: list[np.ndarray], out: np.ndarray) -> None:
            np.copyto(out, ins[0].reshape(out.shape))

        return _Step(
            node, run, self._declare(node, (shape[0], int(np.prod(shape[1:]))), np.float32), np.float32
        )

    # ------------------------------------------------------------------ plan

    def _plan(self, n: int) -> dict[str, Any]:
        plan = self._plans.get(n)
        if plan is not None:
            return plan
        last_use: dict[str, int] = {}
        for i, step in enumerate(self._steps):
            for name in step.node["inputs"]:
                last_use[name] = i
        last_use[self.output_name] = len(self._steps)
        # Greedy liveness planning: a value's buffer returns to the free list after its last
        # use, and a later value takes the smallest free buffer that is large enough.
        free: list[np.ndarray] = []  # flat uint8 arenas
        arena_of: dict[str, np.ndarray] = {}
        buffers: dict[str, np.ndarray] = {}
        c, h, w = self.input_shape[1:] if len(self.input_shape) == 4 else (None, None, None)
        in_buf = (
            np.empty((n, h, w, c), np.float32)
            if c is not None
            else np.empty((n, self.input_shape[1]), np.float32)
        )
        buffers[self.input_name] = in_buf
        outs = []
        total = in_buf.nbytes
        for i, step in enumerate(self._steps):
            shape = step.out_shape(n)
            dtype = np.dtype(step.out_dtype)
            nbytes = int(np.prod(shape)) * dtype.itemsize
            # Element-wise ops may write over an input that dies here (same size): in place.
            inplace = None
            if step.node["op"] in _INPLACE_OPS:
                for name in step.node["inputs"]:
                    a = arena_of.get(name)
                    if a is not None and last_use.get(name) == i and buffers[name].nbytes == nbytes:
                        inplace = name
                        break
            fits = [j for j, a in enumerate(free) if a.nbytes >= nbytes]
            if inplace is not None:
                arena = arena_of.pop(inplace)
            elif fits:
                arena = free.pop(min(fits, key=lambda j: free[j].nbytes))
            else:
                arena = np.empty(max(nbytes, 64), np.uint8)
                total += arena.nbytes
            buf = arena[:nbytes].view(dtype).reshape(shape)
            out_name = step.node["outputs"][0]
            buffers[out_name] = buf
            arena_of[out_name] = arena
            outs.append(buf)
            for name in set(step.node["inputs"]):
                if last_use.get(name) == i and name in arena_of:
                    free.append(arena_of.pop(name))
        plan = {
            "input": in_buf,
            "ins": [[buffers[name] for name in s.node["inputs"]] for s in self._steps],
            "outs": outs,
            "output": buffers[self.output_name],
            "bytes": total,
        }
        self._plans[n] = plan
        return plan

    # ------------------------------------------------------------------ run

    def _check_input(self, x: Any) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"input must be a numpy array, got {type(x).__name__}")
        if x.dtype != np.float32:
            raise TypeError(f"input must be float32, got {x.dtype} (use x.astype(np.float32))")
        want = self.input_shape[1:]
        if x.ndim != len(self.input_shape) or tuple(x.shape[1:]) != tuple(want):
            layout = "N, C, H, W" if len(want) == 3 else "N, C"
            raise ValueError(
                f"input must have shape ({layout}) = (N, {', '.join(map(str, want))}), got {tuple(x.shape)}"
            )
        if x.shape[0] < 1:
            raise ValueError("input batch is empty")
        return x

    def run(self, x: np.ndarray, *, profile: bool = False) -> np.ndarray:
        """Run the model on a float32 batch in NCHW (or NC) layout; returns float32 logits (N, classes)."""
        x = self._check_input(x)
        plan = self._plan(x.shape[0])
        if x.ndim == 4:
            np.copyto(plan["input"], x.transpose(0, 2, 3, 1))
        else:
            np.copyto(plan["input"], x)
        if profile:
            for i, (step, ins, out) in enumerate(zip(self._steps, plan["ins"], plan["outs"], strict=True)):
                t0 = time.perf_counter()
                step.run(ins, out)
                self.layer_times[i] = self.layer_times.get(i, 0.0) + time.perf_counter() - t0
        else:
            for step, ins, out in zip(self._steps, plan["ins"], plan["outs"], strict=True):
                step.run(ins, out)
        y = plan["output"]
        return (y.transpose(0, 3, 1, 2) if y.ndim == 4 else y).copy()

    __call__ = run

    def memory_bytes(self, batch: int = 1) -> int:
        """Bytes of the activation buffers planned for ``batch``."""
        return int(self._plan(batch)["bytes"])

    def describe(self) -> list[dict[str, Any]]:
        """One row per op: index, op, source module, output shape (batch 1) and dtype."""
        rows = []
        for i, step in enumerate(self._steps):
            rows.append(
                {
                    "index": i,
                    "op": step.node["op"],
                    "source": step.node.get("source", ""),
                    "shape": step.out_shape(1),
                    "dtype": np.dtype(step.out_dtype).name,
                    "output": step.node["attrs"].get("output", ""),
                }
            )
        return rows


def load(path: str | os.PathLike, num_threads: int | None = None, verify_checksum: bool = True) -> Model:
    """Read, validate and prepare a .onebit file. Raises :class:`ModelFormatError` on a bad file."""
    path = os.fspath(path)
    mf = read_model_file(path, verify_checksum=verify_checksum)
    return Model(mf, path, num_threads=num_threads)

"""Load a ``.onebit`` file and run it with the C++ engine (numpy in, numpy out; no torch).

``model = onebit.runtime.load("model.onebit"); y = model.run(x)`` with ``x`` a
float32 NCHW batch like PyTorch's. Everything after the file is written lives
in the C++ engine (``csrc/engine``): reading and validating the file, the op
registry, memory planning and execution; this class is a thin binding over it,
and the same engine is the C library ``libonebit`` (``include/onebit.h``).

Thread-safety: :meth:`Model.run` may be called from any number of threads at
once on one loaded model (each call gets its own activation memory from a pool;
weights are shared read-only; the GIL is released while the engine runs).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from onebit import _C
from onebit.runtime.format import ModelFormatError

__all__ = ["DEFAULT_MEMORY_CAP", "FLOAT_PRECISIONS", "Model", "load"]

#: Activation memory one call may plan (values + kernel scratch), unless load() says otherwise.
DEFAULT_MEMORY_CAP = 4 << 30

#: What ``load(..., float_precision=...)`` accepts: the arithmetic of the float conv2d and
#: dense layers (see :func:`load`).
FLOAT_PRECISIONS = ("fp32", "bf16", "bf16_emulated", "int8", "int8_emulated")


class Model:
    """A loaded .onebit model. Use :func:`load` to create one."""

    def __init__(self, engine: Any, path: str) -> None:
        self._engine = engine
        self.path = path
        self.meta: dict[str, Any] = json.loads(engine.meta_json)
        self.num_threads = int(engine.num_threads)
        #: what the float conv2d / dense layers compute in (the ``float_precision`` of :func:`load`);
        #: :meth:`describe` gives it per layer (depthwise convolutions stay ``"fp32"``, and so do
        #: int8 layers with more than 32,768 inputs per output)
        self.float_precision: str = str(engine.float_precision)
        self.input_name = self.meta["inputs"][0]["name"]
        self.output_name = self.meta["outputs"][0]["name"]
        self.input_shape = tuple(engine.input_shape)  # NCHW (or NC) with the export batch size
        self.output_shape = tuple(engine.output_shape)
        self._steps = engine.steps()
        #: seconds per step index, accumulated by ``run(x, profile=True)``
        self.layer_times: dict[int, float] = {}

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
        return np.ascontiguousarray(x)

    def run(self, x: np.ndarray, *, profile: bool = False) -> np.ndarray:
        """Run the model on a float32 batch in NCHW (or NC) layout; returns float32 outputs.

        Safe to call from many threads at once. ``profile=True`` adds each step's
        time to :attr:`layer_times` (seconds, by step index).
        """
        x = self._check_input(x)
        out = np.empty(self._engine.output_shape_for(x.shape[0]), np.float32)
        if profile:
            times = np.zeros(len(self._steps), np.float64)
            self._engine.run(x, out, times)
            for i, t in enumerate(times):
                self.layer_times[i] = self.layer_times.get(i, 0.0) + float(t)
        else:
            self._engine.run(x, out)
        return out

    __call__ = run

    def memory_bytes(self, batch: int = 1) -> int:
        """Bytes of one call's activation memory for ``batch`` (planned values + kernel scratch)."""
        return int(self._engine.memory_bytes(batch))

    def describe(self) -> list[dict[str, Any]]:
        """One row per op: index, op, source module, output shape (batch 1, NHWC storage), dtype.

        ``precision`` is what a float conv2d / dense layer computes in (``"fp32"``,
        ``"bf16"``, ``"int8"``, ...) and ``""`` for every other op. ``written_into`` names
        the concat whose buffer the op writes its output into, in place (at channel
        ``channel_offset``; DenseNet's growing features are not copied), or is ``""``.
        ``computed_by`` names, for a maxpool, the conv2d whose step computes it from that
        conv's output rows while they are in cache (``load(fuse_conv_maxpool=False)`` runs
        it on its own), and for a sign, the float-output bconv2d whose step writes its bits
        from the values it stores (``load(fuse_bconv_sign=False)``); its profiled time is in
        that step's. Else ``""``.
        """
        return [
            {
                "index": i,
                "op": s["op"],
                "source": s["source"],
                "shape": tuple(s["shape"]),
                "dtype": s["dtype"],
                "output": s["output"],
                "precision": s["precision"],
                "written_into": s["written_into"],
                "channel_offset": s["channel_offset"],
                "computed_by": s["computed_by"],
            }
            for i, s in enumerate(self._steps)
        ]


def load(
    path: str | os.PathLike,
    num_threads: int | None = None,
    verify_checksum: bool = True,
    *,
    memory_cap: int = DEFAULT_MEMORY_CAP,
    float_precision: str = "fp32",
    concat_in_place: bool = True,
    fuse_conv_maxpool: bool = True,
    fuse_bconv_sign: bool = True,
    residual_in_place: bool = True,
    fuse_concat_sign: bool = True,
) -> Model:
    """Read, validate and prepare a .onebit file. Raises :class:`ModelFormatError` on a bad file.

    ``num_threads``: threads per call (default: ``ONEBIT_NUM_THREADS`` or every CPU
    the process may use). ``memory_cap``: the most activation memory one call may
    plan, in bytes; a model (or batch size) needing more fails with ``MemoryError``.

    ``float_precision``: what the float conv2d and dense layers (stems, shortcuts,
    classifiers) compute in; the binary layers are exact in every mode.

    * ``"fp32"`` (the default).
    * ``"bf16"``: their inputs and weights rounded to bfloat16 (round to nearest even),
      the products summed in fp32 with AVX512-BF16 (``vdpbf16ps``); the weights are
      converted once here. Needs a CPU with AVX512_BF16 and the avx512 instruction set
      in force: otherwise ``ValueError`` names what is missing (no silent fallback).
    * ``"bf16_emulated"``: the same arithmetic in portable code, bit-identical to
      ``"bf16"``, on any CPU (slower than fp32: for tests and comparisons).
    * ``"int8"``: weights quantized per output channel (symmetric int8) here, each
      call's input per sample (u8 with a zero point), the integer products summed
      exactly with AVX512-VNNI (``vpdpbusd``); needs AVX512_VNNI and the avx512 path.
    * ``"int8_emulated"``: the same in portable code, bit-identical to ``"int8"``.

    Depthwise float convolutions stay fp32. :attr:`Model.float_precision` reports the
    choice; docs/deployment.md and docs/performance.md give its speed and accuracy.

    ``concat_in_place``: the ops that produce a float concat's inputs write them
    straight into the concat's buffer (DenseNet's growing features are then never
    copied; :meth:`Model.describe` shows which); ``False`` copies them, with the same
    results, to measure what that saves.

    ``fuse_conv_maxpool``: a float maxpool that only reads a conv2d's output (the stems'
    3x3/2 pool) is computed by the conv's step, row by row from the conv's rows while
    they are in cache; ``False`` runs it as a step of its own, with the same results.

    ``fuse_bconv_sign``: a sign that only reads a float-output bconv2d's output (each
    block of the binary ResNets) is computed by the conv's step, from the values it
    stores; ``False`` runs it as a step of its own, with the same bits.

    ``residual_in_place``: a float-output bconv2d with a fused residual add writes its
    output over the residual's buffer when nothing reads the residual afterwards (the
    binary ResNets' blocks), so the residual stream stays in one buffer, in cache;
    ``False`` gives each output a buffer of its own, with the same results.

    ``fuse_concat_sign``: a sign of a concat written in place whose inputs start on
    64-channel words (each layer of BinaryDenseNet's blocks binarizes all features so far,
    with its own thresholds) is computed in parts: the op producing each input also writes
    that input's bits of the sign, while its rows are in cache; ``False`` runs the sign as
    a step of its own, re-reading every channel, with the same bits.
    """
    path = os.fspath(path)
    if not isinstance(float_precision, str) or float_precision not in FLOAT_PRECISIONS:
        raise ValueError(
            f"float_precision must be one of {', '.join(FLOAT_PRECISIONS)}, got {float_precision!r}"
        )
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    try:
        engine = _C.Engine.load(
            path,
            num_threads or 0,
            int(memory_cap),
            verify_checksum=verify_checksum,
            float_precision=float_precision,
            concat_in_place=bool(concat_in_place),
            fuse_conv_maxpool=bool(fuse_conv_maxpool),
            fuse_bconv_sign=bool(fuse_bconv_sign),
            residual_in_place=bool(residual_in_place),
            fuse_concat_sign=bool(fuse_concat_sign),
        )
    except _C.EngineFormatError as e:
        raise ModelFormatError(f"{path}: {e}") from None
    return Model(engine, path)


def ops() -> dict[str, dict[str, Any]]:
    """The engine's op registry: each op's doc, input count, attribute schema and parameters.

    The exporter emits only these ops; docs/deployment.md lists them.
    """
    return _C.ops()

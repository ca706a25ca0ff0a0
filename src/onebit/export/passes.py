"""Folding passes: rewrite the lowered graph as the papers' deployment implies.

Run in :data:`FOLDING_PASSES` order by :func:`fold` (the driver calls it):

1. per-channel affines (BatchNorm, ``LearnableBias``, scaling factors) fold into the
   multiplier and bias of the conv/dense (or affine) that produces their input,
2. ``bconv -> maxpool -> [affine] -> sign`` becomes ``bconv(bits) -> bmaxpool [-> bnot]``,
3. ``maxpool -> sign`` becomes ``sign -> binary maxpool`` (max and sign commute),
4. ``flatten -> sign`` becomes ``sign -> flatten``,
5. a binary conv/dense whose only consumer is a sign outputs packed bits directly,
   through per-channel integer thresholds on its popcount result,
6. ``affine -> sign`` becomes a sign with per-channel threshold and direction,
7. a float-output conv whose only consumer is an ``add`` takes the add's other operand as
   its ``residual`` input, and one whose only consumer is a ``relu`` takes it as its
   ``activation``: the engine applies both to each tile as the conv writes it, instead of
   passes over the whole tensor (:func:`fuse_conv_epilogues`),
8. a binary conv with a relu whose only consumer is an ``affine`` (QuickNet's BatchNorm
   after the relu) takes it as ``post_scale`` / ``post_shift``, and then the ``add`` that
   follows as its residual (:func:`fuse_conv_post_affine`).

Between 1 and 2, an ``affine -> maxpool`` whose scales are all positive becomes
``maxpool -> affine`` (:func:`move_affine_past_maxpool`: BinaryDenseNet's transitions, the
affine then runs on a quarter of the values).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from onebit.export.graph import Graph, Value

__all__ = [
    "FOLDING_PASSES",
    "fold",
    "fold_affine_sign",
    "fold_affines",
    "fold_bconv_pool_affine_sign",
    "fold_flatten_sign",
    "fold_maxpool_sign",
    "fold_sign_into_bconv",
    "fuse_conv_epilogues",
    "fuse_conv_post_affine",
    "move_affine_past_maxpool",
]


def _sole_consumer(g: Graph, value: str) -> dict[str, Any] | None:
    users = g.consumers(value)
    return users[0] if len(users) == 1 and users[0]["op"] != "<output>" else None


def _rename_input(g: Graph, old: str, new: str) -> None:
    for n in g.nodes:
        n["inputs"] = [new if i == old else i for i in n["inputs"]]
    for o in g.outputs:
        if o["name"] == old:
            o["name"] = new


def _remove(g: Graph, node: dict[str, Any]) -> None:
    for role in list(node["params"]):
        g.drop_param(node, role)
    g.nodes.remove(node)


def fold_maxpool_sign(g: Graph) -> None:
    """maxpool(float) -> sign  ==>  sign -> bmaxpool (sign(max x - t) = max sign(x - t))."""
    for node in list(g.nodes):
        if node["op"] != "maxpool" or g.values[node["inputs"][0]].kind != "float":
            continue
        sign = _sole_consumer(g, node["outputs"][0])
        if sign is None or sign["op"] != "sign":
            continue
        x = g.values[node["inputs"][0]]
        pooled_float = node["outputs"][0]
        sign_out = sign["outputs"][0]
        new_sign_out = g.fresh(sign["source"])
        g.values[new_sign_out] = Value(new_sign_out, "binary", x.shape)
        sign["inputs"] = [x.name]
        sign["outputs"] = [new_sign_out]
        node["op"] = "bmaxpool"
        node["inputs"] = [new_sign_out]
        node["outputs"] = [sign_out]
        del g.values[pooled_float]
        g.nodes.remove(sign)
        g.nodes.insert(g.nodes.index(node), sign)


def fold_flatten_sign(g: Graph) -> None:
    """flatten -> sign  ==>  sign -> flatten (when the threshold is per channel, not per position)."""
    for node in list(g.nodes):
        if node["op"] != "flatten" or g.values[node["inputs"][0]].kind != "float":
            continue
        x = g.values[node["inputs"][0]]
        sign = _sole_consumer(g, node["outputs"][0])
        if sign is None or sign["op"] != "sign" or len(x.shape) != 4:
            continue
        _, h, w, c = x.shape
        t = g.tensors[sign["params"]["threshold"]].reshape(h, w, c)
        if not np.all(t == t[:1, :1, :]):
            continue
        g.tensors[sign["params"]["threshold"]] = np.ascontiguousarray(t[0, 0])
        flat_out = node["outputs"][0]
        sign_out = sign["outputs"][0]
        new_sign_out = g.fresh(sign["source"])
        g.values[new_sign_out] = Value(new_sign_out, "binary", x.shape)
        sign["inputs"], sign["outputs"] = [x.name], [new_sign_out]
        node["inputs"], node["outputs"] = [new_sign_out], [sign_out]
        g.values[sign_out].torch_order = g.values.pop(flat_out).torch_order
        g.nodes.remove(sign)
        g.nodes.insert(g.nodes.index(node), sign)


def _f32_at_least(u: np.ndarray) -> np.ndarray:
    """Smallest float32 >= u (elementwise), so ``x >= result`` equals ``x >= u`` for float32 x."""
    r = u.astype(np.float32)
    return np.where(r.astype(np.float64) < u, np.nextafter(r, np.float32(np.inf)), r).astype(np.float32)


def _f32_at_most(u: np.ndarray) -> np.ndarray:
    """Largest float32 <= u (elementwise)."""
    r = u.astype(np.float32)
    return np.where(r.astype(np.float64) > u, np.nextafter(r, np.float32(-np.inf)), r).astype(np.float32)


def fold_affine_sign(g: Graph) -> None:
    """affine(s, c) -> sign(t)  ==>  sign with per-channel threshold and direction on the affine's input.

    ``s*x + c >= t``  <=>  ``x >= (t - c)/s`` where s > 0, ``x <= (t - c)/s`` where s < 0
    (``flip``), constant where s = 0. Thresholds are rounded to float32 so that the
    comparison on float32 inputs is the real-arithmetic one. Saves a pass over the
    tensor before every binary layer fed by a BatchNorm that could not fold upstream
    (DenseNet's BN after a concat, BN after a residual add).
    """
    for node in list(g.nodes):
        if node["op"] != "affine" or g.values[node["inputs"][0]].kind != "float":
            continue
        sign = _sole_consumer(g, node["outputs"][0])
        if sign is None or sign["op"] != "sign" or "flip" in sign["params"]:
            continue
        sc = g.tensors[node["params"]["scale"]].astype(np.float64)
        sh = g.tensors[node["params"]["shift"]].astype(np.float64)
        t = g.tensors[sign["params"]["threshold"]].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (t - sh) / sc
        thr = np.where(sc > 0, _f32_at_least(np.nan_to_num(u)), _f32_at_most(np.nan_to_num(u)))
        const_pos = (sc == 0) & (sh - t >= 0)
        thr = np.where(const_pos, -np.inf, np.where(sc == 0, np.inf, thr)).astype(np.float32)
        g.tensors[sign["params"]["threshold"]] = thr
        owner = sign["outputs"][0].split(":")[0]
        sign["params"]["flip"] = g.param(owner, "flip", (sc < 0).astype(np.uint8))
        sign["inputs"] = list(node["inputs"])
        g.values.pop(node["outputs"][0], None)
        _remove(g, node)


def fold_affines(g: Graph) -> None:
    """Fold a per-channel affine into the multiplier and bias of the op that produced its input."""
    changed = True
    while changed:
        changed = False
        for node in list(g.nodes):
            if node["op"] != "affine":
                continue
            prod = g.producer(node["inputs"][0])
            if prod is None or _sole_consumer(g, prod["outputs"][0]) is not node:
                continue
            scale = g.tensors[node["params"]["scale"]].astype(np.float64)
            shift = g.tensors[node["params"]["shift"]].astype(np.float64)
            if (
                prod["op"] in ("conv2d", "dense", "bconv2d", "bdense")
                and prod["attrs"].get("output", "float") == "float"
            ):
                mult = g.tensors[prod["params"]["multiplier"]].astype(np.float64)
                bias = g.tensors[prod["params"]["bias"]].astype(np.float64)
                g.tensors[prod["params"]["multiplier"]] = (mult * scale).astype(np.float32)
                g.tensors[prod["params"]["bias"]] = (bias * scale + shift).astype(np.float32)
            elif prod["op"] == "affine":
                s0 = g.tensors[prod["params"]["scale"]].astype(np.float64)
                b0 = g.tensors[prod["params"]["shift"]].astype(np.float64)
                g.tensors[prod["params"]["scale"]] = (s0 * scale).astype(np.float32)
                g.tensors[prod["params"]["shift"]] = (b0 * scale + shift).astype(np.float32)
            else:
                continue
            out = node["outputs"][0]
            _remove(g, node)
            _rename_input(g, out, prod["outputs"][0])
            changed = True


def move_affine_past_maxpool(g: Graph) -> None:
    """affine -> maxpool  ==>  maxpool -> affine, when every scale is positive.

    Exact, not approximately so: with a > 0, x -> fl(fl(x * a) + b) (the engine's affine, two
    roundings) never decreases, so the max of the transformed window is the transformed max;
    maxpool ignores padded positions, and NaN wins either way. A shift of -0.0 is left alone
    (it could turn the window's zeros -0 and +0 apart after an underflow, and the max keeps
    the first of equal values). BinaryDenseNet's transitions (BatchNorm -> maxpool 2x2 ->
    relu -> 1x1 conv) then scale a quarter of the values.
    """
    for node in list(g.nodes):
        if node["op"] != "affine" or g.values[node["inputs"][0]].kind != "float":
            continue
        pool = _sole_consumer(g, node["outputs"][0])
        if pool is None or pool["op"] != "maxpool":
            continue
        scale = g.tensors[node["params"]["scale"]]
        shift = g.tensors[node["params"]["shift"]]
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(np.isfinite(shift))):
            continue
        if np.any((shift == 0) & np.signbit(shift)):
            continue
        after = _sole_consumer(g, pool["outputs"][0])
        if after is not None and after["op"] == "sign":
            continue  # affine -> maxpool -> sign becomes sign -> binary maxpool (passes 3 and 6)
        x, scaled, pooled = node["inputs"][0], node["outputs"][0], pool["outputs"][0]
        new = g.fresh(pool["source"])
        g.values[new] = Value(new, "float", g.values[pooled].shape)
        del g.values[scaled]
        pool["inputs"], pool["outputs"] = [x], [new]
        node["inputs"], node["outputs"] = [new], [pooled]
        g.nodes.remove(node)
        g.nodes.insert(g.nodes.index(pool) + 1, node)


def _k_max(node: dict[str, Any]) -> int:
    if node["op"] == "bconv2d":
        kh, kw = node["attrs"]["kernel"]
        return int(node["attrs"]["in_channels"]) // int(node["attrs"].get("groups", 1)) * kh * kw
    return int(node["attrs"]["in_channels"])


def _int_thresholds(m: np.ndarray, b: np.ndarray, t: np.ndarray, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer (threshold, direction): sign(m*acc + b - t) = +1  <=>  direction*(acc - threshold) >= 0.

    m > 0: acc >= ceil((t - b) / m); m < 0: acc <= floor((t - b) / m); m = 0: a constant
    channel, encoded with direction +1 and a threshold below (always +1) or above (always -1)
    every reachable acc in [-k_max, k_max].
    """
    m, b, t = (np.asarray(a, np.float64) for a in (m, b, t))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (t - b) / m
    thr = np.where(m > 0, np.ceil(ratio), np.where(m < 0, np.floor(ratio), 0.0))
    const_pos = (m == 0) & (b - t >= 0)
    thr = np.where(const_pos, -(k_max + 1), thr)
    thr = np.where((m == 0) & ~const_pos, k_max + 1, thr)
    direction = np.where(m < 0, -1, 1)
    thr = np.clip(np.nan_to_num(thr), -(k_max + 1), k_max + 1)
    return thr.astype(np.int32), direction.astype(np.int32)


def _set_binary_output(
    g: Graph, node: dict[str, Any], thr: np.ndarray, direction: np.ndarray, out: str
) -> None:
    g.drop_param(node, "multiplier")
    g.drop_param(node, "bias")
    owner = node["outputs"][0].split(":")[0]
    node["params"]["threshold"] = g.param(owner, "threshold", thr)
    node["params"]["direction"] = g.param(owner, "direction", direction)
    node["attrs"]["output"] = "binary"
    g.values[out] = Value(out, "binary", g.values[out].shape, g.values[out].torch_order)
    node["outputs"] = [out]


def fold_sign_into_bconv(g: Graph) -> None:
    """bconv(float out) -> sign(t)  ==>  bconv with binary output via integer thresholds."""
    for node in list(g.nodes):
        if node["op"] not in ("bconv2d", "bdense") or node["attrs"].get("output") != "float":
            continue
        if node["attrs"].get("residual_bits", 1) > 1:
            continue  # a scaled sum of plane results: no integer threshold
        sign = _sole_consumer(g, node["outputs"][0])
        if sign is None or sign["op"] != "sign":
            continue
        thr, direction = _int_thresholds(
            g.tensors[node["params"]["multiplier"]],
            g.tensors[node["params"]["bias"]],
            g.tensors[sign["params"]["threshold"]],
            _k_max(node),
        )
        _set_binary_output(g, node, thr, direction, sign["outputs"][0])
        _remove(g, sign)


def fold_bconv_pool_affine_sign(g: Graph) -> None:
    """bconv -> maxpool -> [affine] -> sign  ==>  bconv(bits) -> bmaxpool [-> bnot].

    The bconv output ``y = m*acc + b`` and the affine ``z = s*y + c`` are monotone per
    channel, so the pooled sign is decided by per-pixel bits: where ``s > 0``,
    sign(max z) = max of the per-pixel signs (a binary max-pool); where ``s < 0``,
    max over y becomes min over z: the bconv emits negated bits, the binary max-pool
    takes their max, and ``bnot`` negates those channels back (min b = -max(-b)).
    """
    for node in list(g.nodes):
        if node["op"] != "bconv2d" or node["attrs"].get("output") != "float":
            continue
        if node["attrs"].get("residual_bits", 1) > 1:
            continue  # a scaled sum of plane results: no integer threshold
        pool = _sole_consumer(g, node["outputs"][0])
        if pool is None or pool["op"] != "maxpool":
            continue
        nxt = _sole_consumer(g, pool["outputs"][0])
        affine = None
        if nxt is not None and nxt["op"] == "affine":
            affine = nxt
            nxt = _sole_consumer(g, affine["outputs"][0])
        if nxt is None or nxt["op"] != "sign":
            continue
        sign = nxt
        m = g.tensors[node["params"]["multiplier"]].astype(np.float64)
        b = g.tensors[node["params"]["bias"]].astype(np.float64)
        s_ = np.ones_like(m) if affine is None else g.tensors[affine["params"]["scale"]].astype(np.float64)
        c_ = np.zeros_like(m) if affine is None else g.tensors[affine["params"]["shift"]].astype(np.float64)
        thr, direction = _int_thresholds(
            s_ * m, s_ * b + c_, g.tensors[sign["params"]["threshold"]], _k_max(node)
        )
        neg = s_ < 0
        # negated bits: not(d * (acc - thr) >= 0)  <=>  -d * (acc - (thr - d)) >= 0
        thr = np.where(neg, thr - direction, thr).astype(np.int32)
        direction = np.where(neg, -direction, direction).astype(np.int32)
        bits_out = g.fresh(node["source"])
        g.values[bits_out] = Value(bits_out, "binary", g.values[node["outputs"][0]].shape)
        del g.values[node["outputs"][0]]
        _set_binary_output(g, node, thr, direction, bits_out)
        final = sign["outputs"][0]
        pooled = g.values.pop(pool["outputs"][0])
        pool["op"] = "bmaxpool"
        pool["inputs"] = [bits_out]
        if neg.any():
            mid = g.fresh(pool["source"])
            g.values[mid] = Value(mid, "binary", pooled.shape)
            pool["outputs"] = [mid]
            idx = g.nodes.index(sign)
            _remove(g, sign)
            g.nodes.insert(
                idx,
                {
                    "op": "bnot",
                    "inputs": [mid],
                    "outputs": [final],
                    "attrs": {},
                    "params": {"mask": g.param(final.split(":")[0], "mask", neg.astype(np.uint8))},
                    "source": pool["source"],
                },
            )
        else:
            pool["outputs"] = [final]
            _remove(g, sign)
        if affine is not None:
            g.values.pop(affine["outputs"][0], None)
            _remove(g, affine)


def _float_conv(node: dict[str, Any] | None) -> bool:
    return (
        node is not None
        and node["op"] in ("conv2d", "bconv2d")
        and node["attrs"].get("output", "float") == "float"
    )


def _take_output(g: Graph, conv: dict[str, Any], node: dict[str, Any]) -> None:
    """``conv`` now writes what ``node`` (its output's sole consumer) wrote; ``node`` goes."""
    g.values.pop(conv["outputs"][0], None)
    conv["outputs"] = list(node["outputs"])
    _remove(g, node)


def _absorb_add(g: Graph, conv: dict[str, Any], add: dict[str, Any], residual: str) -> None:
    """``conv`` takes ``add``'s other operand as its residual input and writes the sum. It moves
    to the add's place in the node order: ``residual`` may be computed after the conv."""
    conv["inputs"] = [conv["inputs"][0], residual]
    g.nodes.remove(conv)
    g.nodes.insert(g.nodes.index(add), conv)
    _take_output(g, conv, add)


def fuse_conv_epilogues(g: Graph) -> None:
    """conv -> add(., r) [-> relu]  ==>  conv(x, residual=r, activation=relu).

    The engine computes ``activation(conv(x) + r)`` in float32 with the add and relu ops'
    own roundings, so the fused graph gives the same bits. Adds go first: the relu of
    ``relu(conv + r)`` then finds the conv. The conv moves to the add's place in the node
    order (its inputs exist there; ``r`` may be computed after the conv, as the 1x1
    shortcut of a downsampling block is). Of two conv operands the binary one absorbs the
    add: its kernel applies it per tile.
    """
    for add in list(g.nodes):
        if add["op"] != "add" or len(add["inputs"]) != 2:
            continue
        a, b = add["inputs"]
        if a == b:
            continue
        options = [(g.producer(v), v, r) for v, r in ((a, b), (b, a))]
        options.sort(key=lambda o: 0 if o[0] is not None and o[0]["op"] == "bconv2d" else 1)
        for conv, own, residual in options:
            if not _float_conv(conv) or len(conv["inputs"]) != 1:
                continue
            if conv["attrs"].get("activation", "none") != "none" or _sole_consumer(g, own) is not add:
                continue
            _absorb_add(g, conv, add, residual)
            break
    for relu in list(g.nodes):
        if relu["op"] != "relu":
            continue
        conv = g.producer(relu["inputs"][0])
        if not _float_conv(conv) or conv["attrs"].get("activation", "none") != "none":
            continue
        if _sole_consumer(g, conv["outputs"][0]) is not relu:
            continue
        conv["attrs"]["activation"] = "relu"
        _take_output(g, conv, relu)


def fuse_conv_post_affine(g: Graph) -> None:
    """bconv(activation) -> affine [-> add(., r)]  ==>  bconv(x[, r], post_scale, post_shift).

    QuickNet's blocks are ``x + BN(relu(bconv(x)))``: the BatchNorm comes after the relu, so
    :func:`fold_affines` cannot fold it into the multiplier, and the relu, affine and add
    were three passes over the block's output. The engine computes
    ``relu(y) * post_scale + post_shift + r`` per tile, with those ops' own float32
    roundings (the same bits). Runs after :func:`fuse_conv_epilogues`, which gave the conv
    its relu; an affine after a conv without activation was folded already.
    """
    for conv in list(g.nodes):
        if conv["op"] != "bconv2d" or not _float_conv(conv) or len(conv["inputs"]) != 1:
            continue
        if conv["attrs"].get("activation", "none") == "none" or "post_scale" in conv["params"]:
            continue
        affine = _sole_consumer(g, conv["outputs"][0])
        if affine is None or affine["op"] != "affine":
            continue
        conv["params"]["post_scale"] = affine["params"].pop("scale")
        conv["params"]["post_shift"] = affine["params"].pop("shift")
        _take_output(g, conv, affine)
        own = conv["outputs"][0]
        add = _sole_consumer(g, own)
        if add is None or add["op"] != "add" or len(set(add["inputs"])) != 2:
            continue
        _absorb_add(g, conv, add, add["inputs"][1] if add["inputs"][0] == own else add["inputs"][0])


#: The folding passes in the order :func:`fold` runs them.
FOLDING_PASSES: tuple[Callable[[Graph], None], ...] = (
    fold_affines,
    move_affine_past_maxpool,
    fold_bconv_pool_affine_sign,
    fold_maxpool_sign,
    fold_flatten_sign,
    fold_sign_into_bconv,
    fold_affine_sign,
    fuse_conv_epilogues,
    fuse_conv_post_affine,
)


def fold(g: Graph) -> None:
    """Run every folding pass on ``g`` in place, in :data:`FOLDING_PASSES` order."""
    for p in FOLDING_PASSES:
        p(g)

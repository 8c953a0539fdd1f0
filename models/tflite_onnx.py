"""Convert MediaPipe's BlazeFace ``.tflite`` detectors into plain ONNX graphs.

Used once, at model-build time, by ``models/build.py``; the app itself never reads a
``.tflite`` file. Only the operators the two face detectors use are supported (conv,
depthwise conv, pad, add, relu, max pool, bilinear resize, depth-to-space, reshape,
concatenation); any other operator stops the conversion with its name.

Weights are taken from the LiteRT interpreter (``ai-edge-litert``) after one run with
every tensor kept, so fp16 weights (``DEQUANTIZE``) and sparse weights (``DENSIFY``) arrive
as the dense float32 arrays the interpreter itself computes with. The ONNX graph keeps
the TFLite contract: input ``(1, S, S, 3)`` float32 RGB in ``[-1, 1]`` (NHWC), outputs
``regressors`` ``(1, N, 16)`` and ``classificators`` ``(1, N, 1)``. Inside, activations run
in NCHW; 4-D tensors go back to NHWC before a reshape so the flattening order is TFLite's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

OPSET = 17


def _interpreter(data: bytes) -> Any:
    import warnings

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without delegates (XNNPACK would fold the weights away) every tensor is kept and
    # computed by the reference kernels, which are the definition of each operator.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "preserve_all_tensors is for debugging"
        interp = Interpreter(model_content=data, experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


def _constant_values(data: bytes, graph: Any, constant: set[int]) -> dict[int, np.ndarray]:
    """Float32 values of every constant tensor, as the interpreter computes them."""
    interp = _interpreter(data)
    inp = interp.get_input_details()[0]
    interp.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    interp.invoke()
    return {i: np.array(interp.get_tensor(i)) for i in sorted(constant)}


def _reference_outputs(data: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the ``.tflite`` file itself (LiteRT) on ``x``; outputs by name."""
    interp = _interpreter(data)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return {d["name"]: np.array(interp.get_tensor(d["index"])) for d in interp.get_output_details()}


class _Builder:
    """Collects ONNX nodes and initialisers while walking the TFLite operators."""

    def __init__(self, names: dict[int, str], consts: dict[int, np.ndarray]) -> None:
        self.names = names
        self.consts = consts
        self.nodes: list[Any] = []
        self.inits: dict[str, np.ndarray] = {}
        self._n = 0

    def fresh(self, stem: str) -> str:
        self._n += 1
        return f"{stem}__{self._n}"

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(op), **attrs))

    def init(self, stem: str, value: np.ndarray) -> str:
        name = self.fresh(stem)
        self.inits[name] = np.ascontiguousarray(value)
        return name

    def activation(self, src: str, dst: str, fused: int) -> None:
        if fused == 0:
            self.node("Identity", [src], [dst])
        elif fused == 1:
            self.node("Relu", [src], [dst])
        elif fused == 3:
            self.node("Clip", [src, self.init("lo", np.float32(0)), self.init("hi", np.float32(6))], [dst])
        else:
            raise SystemExit(f"unsupported fused activation {fused}")


def _same_pads(in_hw: tuple[int, int], kernel: tuple[int, int], stride: tuple[int, int],
               dilation: tuple[int, int]) -> list[int]:
    """TFLite SAME padding as explicit ONNX pads (extra pixel at the end, as TF does)."""
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, stride, dilation):
        eff = (k - 1) * d + 1
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def convert(data: bytes, check_images: list[np.ndarray] | None = None) -> tuple[bytes, float]:
    """Convert a BlazeFace ``.tflite`` model to ONNX bytes.

    Args:
        data: the ``.tflite`` file's bytes.
        check_images: model inputs ``(1, S, S, 3)`` float32 on which the ONNX graph is
            compared with LiteRT running the original; random inputs when ``None``.

    Returns:
        ``(onnx_bytes, max_abs_difference)`` over the outputs on the check inputs.
    """
    import onnx
    from ai_edge_litert import schema_py_generated as schema
    from onnx import TensorProto, helper, numpy_helper

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        ops.append((op_names[max(code.builtinCode, code.deprecatedBuiltinCode)], op))

    # Constants: tensors backed by a buffer, and whatever DEQUANTIZE/DENSIFY make of them.
    constant = {i for i, t in enumerate(graph.tensors) if model.buffers[t.buffer].data is not None}
    for name, op in ops:
        if name in ("DEQUANTIZE", "DENSIFY") and all(i in constant for i in op.inputs):
            constant.update(op.outputs)
    consts = _constant_values(data, graph, constant)
    # Internal names are prefixed so they never clash with the graph's input and outputs.
    names = {i: "tfl:" + ((t.name.decode() if isinstance(t.name, bytes) else str(t.name)) or str(i))
             for i, t in enumerate(graph.tensors)}
    shapes = {i: [int(v) for v in t.shape] for i, t in enumerate(graph.tensors)}
    b = _Builder(names, consts)
    nchw: set[int] = set()  # tensors held as NCHW in the ONNX graph

    in_idx = graph.inputs[0]
    onnx_in = "image"
    b.node("Transpose", [onnx_in], [names[in_idx]], perm=[0, 3, 1, 2])
    nchw.add(in_idx)

    def nhwc(i: int) -> str:
        if i not in nchw:
            return names[i]
        out = b.fresh(names[i] + "_nhwc")
        b.node("Transpose", [names[i]], [out], perm=[0, 2, 3, 1])
        return out

    def conv(op: Any, depthwise: bool) -> None:
        opt = op.builtinOptions
        x, w_i = op.inputs[0], op.inputs[1]
        w = consts[w_i]
        in_hw = (shapes[x][1], shapes[x][2])
        kernel = (w.shape[1], w.shape[2])
        stride = (opt.strideH, opt.strideW)
        dilation = (opt.dilationHFactor, opt.dilationWFactor)
        if depthwise:
            group = shapes[x][3]
            weight = np.transpose(w, (3, 0, 1, 2))  # (1, kh, kw, C*M) -> (C*M, 1, kh, kw)
        else:
            group = 1
            weight = np.transpose(w, (0, 3, 1, 2))  # (O, kh, kw, I) -> (O, I, kh, kw)
        pads = _same_pads(in_hw, kernel, stride, dilation) if opt.padding == schema.Padding.SAME else [0, 0, 0, 0]
        inputs = [names[x], b.init("w", weight.astype(np.float32))]
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            inputs.append(b.init("b", consts[op.inputs[2]].astype(np.float32)))
        raw = b.fresh("conv")
        b.node("Conv", inputs, [raw], kernel_shape=list(kernel), strides=list(stride),
               dilations=list(dilation), pads=pads, group=group)
        b.activation(raw, names[op.outputs[0]], opt.fusedActivationFunction)
        nchw.add(op.outputs[0])

    def pad(op: Any) -> None:
        p = consts[op.inputs[1]].astype(np.int64)  # (4, 2) NHWC
        order = [0, 3, 1, 2]
        pads = [int(p[a, 0]) for a in order] + [int(p[a, 1]) for a in order]
        b.node("Pad", [names[op.inputs[0]], b.init("pads", np.array(pads, np.int64))], [names[op.outputs[0]]])
        nchw.add(op.outputs[0])

    def add(op: Any) -> None:
        raw = b.fresh("add")
        b.node("Add", [names[i] for i in op.inputs], [raw])
        b.activation(raw, names[op.outputs[0]], op.builtinOptions.fusedActivationFunction)
        if op.inputs[0] in nchw:
            nchw.add(op.outputs[0])

    def relu(op: Any) -> None:
        b.node("Relu", [names[op.inputs[0]]], [names[op.outputs[0]]])
        if op.inputs[0] in nchw:
            nchw.add(op.outputs[0])

    def max_pool(op: Any) -> None:
        opt = op.builtinOptions
        x = op.inputs[0]
        kernel, stride = (opt.filterHeight, opt.filterWidth), (opt.strideH, opt.strideW)
        pads = (_same_pads((shapes[x][1], shapes[x][2]), kernel, stride, (1, 1))
                if opt.padding == schema.Padding.SAME else [0, 0, 0, 0])
        raw = b.fresh("pool")
        b.node("MaxPool", [names[x]], [raw], kernel_shape=list(kernel), strides=list(stride), pads=pads)
        b.activation(raw, names[op.outputs[0]], opt.fusedActivationFunction)
        nchw.add(op.outputs[0])

    def resize(op: Any) -> None:
        opt = op.builtinOptions
        out_shape = shapes[op.outputs[0]]
        sizes = np.array([out_shape[0], out_shape[3], out_shape[1], out_shape[2]], np.int64)
        mode = "align_corners" if opt.alignCorners else ("half_pixel" if opt.halfPixelCenters else "asymmetric")
        b.node("Resize", [names[op.inputs[0]], "", "", b.init("sizes", sizes)], [names[op.outputs[0]]],
               mode="linear", coordinate_transformation_mode=mode)
        nchw.add(op.outputs[0])

    def depth_to_space(op: Any) -> None:
        b.node("DepthToSpace", [names[op.inputs[0]]], [names[op.outputs[0]]],
               blocksize=op.builtinOptions.blockSize, mode="DCR")
        nchw.add(op.outputs[0])

    def reshape(op: Any) -> None:
        target = np.array(shapes[op.outputs[0]], np.int64)
        b.node("Reshape", [nhwc(op.inputs[0]), b.init("shape", target)], [names[op.outputs[0]]])

    def concat(op: Any) -> None:
        opt = op.builtinOptions
        ins = op.inputs
        rank = len(shapes[ins[0]])
        axis = opt.axis % rank
        if rank == 4 and all(i in nchw for i in ins):
            axis = [0, 2, 3, 1][axis]
            nchw.add(op.outputs[0])
            srcs = [names[i] for i in ins]
        else:
            srcs = [nhwc(i) for i in ins]
        raw = b.fresh("concat")
        b.node("Concat", srcs, [raw], axis=axis)
        b.activation(raw, names[op.outputs[0]], opt.fusedActivationFunction)

    handlers: dict[str, Callable[[Any], None]] = {
        "CONV_2D": lambda op: conv(op, False),
        "DEPTHWISE_CONV_2D": lambda op: conv(op, True),
        "PAD": pad, "ADD": add, "RELU": relu, "MAX_POOL_2D": max_pool,
        "RESIZE_BILINEAR": resize, "DEPTH_TO_SPACE": depth_to_space,
        "RESHAPE": reshape, "CONCATENATION": concat,
    }
    for name, op in ops:
        if name in ("DEQUANTIZE", "DENSIFY") and all(i in constant for i in op.inputs):
            continue
        if name not in handlers:
            raise SystemExit(f"tflite operator {name} is not supported by the converter")
        handlers[name](op)

    # Outputs sorted into the TFLite roles: 16 box/keypoint values and 1 score per anchor.
    outs = list(graph.outputs)
    roles = {"regressors": next(i for i in outs if shapes[i][-1] == 16),
             "classificators": next(i for i in outs if shapes[i][-1] == 1)}
    for role, i in roles.items():
        b.node("Identity", [nhwc(i)], [role])
    size = shapes[in_idx][1]
    onnx_graph = helper.make_graph(
        b.nodes, "blazeface",
        [helper.make_tensor_value_info(onnx_in, TensorProto.FLOAT, [1, size, size, 3])],
        [helper.make_tensor_value_info(role, TensorProto.FLOAT, shapes[i]) for role, i in roles.items()],
        [numpy_helper.from_array(v, k) for k, v in b.inits.items()],
    )
    onnx_model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                   producer_name="faceapp-models-build", producer_version="1")
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model)
    out = onnx_model.SerializeToString()
    return out, max_difference(data, out, check_images)


def max_difference(tflite_bytes: bytes, onnx_bytes: bytes, inputs: list[np.ndarray] | None = None) -> float:
    """Largest absolute output difference between LiteRT on the ``.tflite`` and onnxruntime."""
    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    shape = sess.get_inputs()[0].shape
    if inputs is None:
        rng = np.random.default_rng(0)
        inputs = [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(3)]
    worst = 0.0
    for x in inputs:
        ref = _reference_outputs(tflite_bytes, x)
        for value in sess.run(["regressors", "classificators"], {"image": x}):
            match = next(v for v in ref.values() if v.shape[-1] == value.shape[-1])
            worst = max(worst, float(np.abs(match - value).max()))
    return worst

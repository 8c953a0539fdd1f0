"""Convert an OpenVINO IR (``.xml`` + ``.bin``) face network into a plain ONNX graph.

Used once, at model-build time, by ``models/build.py``; OpenVINO cannot write ONNX, so the
IR's layers are read from the XML and written with the ``onnx`` package. Only the
operators Open Model Zoo's ``face-reidentification-retail-0095`` uses are supported
(convolution, grouped convolution, PReLU, element-wise add and multiply, average pooling,
sigmoid, and constants with their fp16 -> fp32 conversion); any other operator stops the
conversion with its name.

fp16 weights are widened to fp32 exactly (every fp16 value is an fp32 value), which is
what OpenVINO's CPU plugin computes with too. The ONNX graph keeps the IR's input
contract (``(N, 3, H, W)`` float32 BGR, 0-255) with a symbolic batch dimension, and ends
in a ``Flatten`` so the embedding comes out as ``(N, D)``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

import numpy as np

OPSET = 17
_DTYPES = {"f16": np.float16, "f32": np.float32, "i64": np.int64, "i32": np.int32}


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.replace(" ", "").split(",") if v]


class _Ir:
    """The IR's layers, edges and constants."""

    def __init__(self, xml: bytes, weights: bytes) -> None:
        root = ET.fromstring(xml)
        self.layers: dict[str, ET.Element] = {la.get("id", ""): la for la in root.iter("layer")}
        self.sources: dict[tuple[str, str], tuple[str, str]] = {}  # (layer, in-port) -> (layer, out-port)
        self.users: dict[str, list[str]] = defaultdict(list)
        edges = root.find("edges")
        for e in edges if edges is not None else []:
            self.sources[(e.get("to-layer", ""), e.get("to-port", ""))] = (e.get("from-layer", ""), e.get("from-port", ""))
            self.users[e.get("from-layer", "")].append(e.get("to-layer", ""))
        self.weights = weights

    @staticmethod
    def data(layer: ET.Element) -> dict[str, str]:
        node = layer.find("data")
        return dict(node.attrib) if node is not None else {}

    def inputs(self, layer_id: str) -> list[tuple[str, str]]:
        """The (layer, port) feeding each input port of ``layer_id``, in port order."""
        layer = self.layers[layer_id]
        ports = [p.get("id", "") for p in layer.findall("input/port")]
        return [self.sources[(layer_id, p)] for p in ports]

    def const(self, layer_id: str) -> np.ndarray:
        d = self.data(self.layers[layer_id])
        dtype = _DTYPES[d["element_type"]]
        shape = _ints(d["shape"])
        count = int(np.prod(shape)) if shape else 1
        arr = np.frombuffer(self.weights, dtype=dtype, count=count, offset=int(d["offset"]))
        return arr.reshape(shape)

    def order(self) -> list[str]:
        """Layer ids in topological order."""
        indegree = {lid: len(self.layers[lid].findall("input/port")) for lid in self.layers}
        ready = sorted((lid for lid, n in indegree.items() if n == 0), key=int)
        out: list[str] = []
        while ready:
            lid = ready.pop(0)
            out.append(lid)
            for user in self.users[lid]:
                indegree[user] -= 1
                if indegree[user] == 0:
                    ready.append(user)
        if len(out) != len(self.layers):
            raise ValueError("the IR's layers form a cycle or have unconnected inputs")
        return out


def _conv_attrs(d: dict[str, str]) -> dict[str, Any]:
    if d.get("auto_pad", "explicit") not in ("explicit", "notset"):
        raise ValueError(f"convolution auto_pad {d['auto_pad']!r} is not supported")
    return {"strides": _ints(d["strides"]), "dilations": _ints(d["dilations"]),
            "pads": _ints(d["pads_begin"]) + _ints(d["pads_end"])}


def convert(xml: bytes, weights: bytes, *, input_name: str = "data", output_name: str = "embedding",
            metadata: dict[str, str] | None = None) -> bytes:
    """The ONNX graph of an IR network.

    Args:
        xml: the IR's ``.xml`` bytes.
        weights: the IR's ``.bin`` bytes.
        input_name: name of the ONNX graph's input.
        output_name: name of its ``(N, D)`` output.
        metadata: metadata properties to write into the model.

    Raises:
        ValueError: the IR uses an operator this converter does not know.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    ir = _Ir(xml, weights)
    consts: dict[tuple[str, str], np.ndarray] = {}
    names: dict[tuple[str, str], str] = {}
    nodes: list[Any] = []
    initialisers: dict[str, np.ndarray] = {}
    graph_input: Any = None
    result: str | None = None

    def out_port(layer_id: str) -> str:
        ports = ir.layers[layer_id].findall("output/port")
        return ports[0].get("id", "") if ports else ""

    def tensor(src: tuple[str, str], shape: tuple[int, ...] | None = None) -> str:
        """The ONNX name of a layer output; constants become float32 initialisers."""
        if src in consts:
            value = consts[src].astype(np.float32)
            if shape is not None:
                value = value.reshape(shape)
            name = f"c{src[0]}" + ("" if shape is None else "_" + "x".join(map(str, shape)))
            initialisers[name] = value
            return name
        return names[src]

    for lid in ir.order():
        layer = ir.layers[lid]
        kind = layer.get("type")
        d = ir.data(layer)
        name = layer.get("name", lid)
        port = out_port(lid)
        srcs = ir.inputs(lid) if kind not in ("Parameter", "Const") else []
        out = f"t{lid}"
        if kind == "Parameter":
            shape = _ints(d["shape"])
            graph_input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", *shape[1:]])
            names[(lid, port)] = input_name
            continue
        if kind == "Const":
            consts[(lid, port)] = ir.const(lid)
            continue
        if kind == "Convert":
            if srcs[0] in consts:
                consts[(lid, port)] = consts[srcs[0]].astype(_DTYPES.get(d["destination_type"], np.float32))
                continue
            nodes.append(helper.make_node("Cast", [tensor(srcs[0])], [out], name=name, to=TensorProto.FLOAT))
        elif kind == "Result":
            result = tensor(srcs[0])
            continue
        elif kind == "Convolution":
            nodes.append(helper.make_node("Conv", [tensor(srcs[0]), tensor(srcs[1])], [out], name=name, **_conv_attrs(d)))
        elif kind == "GroupConvolution":
            w = consts[srcs[1]]  # (G, O/G, I/G, kh, kw)
            shape = (w.shape[0] * w.shape[1], *w.shape[2:])
            nodes.append(helper.make_node("Conv", [tensor(srcs[0]), tensor(srcs[1], shape)], [out], name=name,
                                          group=int(w.shape[0]), **_conv_attrs(d)))
        elif kind == "PReLU":
            slope = consts[srcs[1]]
            # OpenVINO's 1-D slope runs along the channel axis; ONNX broadcasts from the last axis.
            nodes.append(helper.make_node("PRelu", [tensor(srcs[0]), tensor(srcs[1], (slope.size, 1, 1))], [out],
                                          name=name))
        elif kind in ("Add", "Multiply"):
            if d.get("auto_broadcast", "numpy") != "numpy":
                raise ValueError(f"{kind} with auto_broadcast {d['auto_broadcast']!r} is not supported")
            op = "Add" if kind == "Add" else "Mul"
            nodes.append(helper.make_node(op, [tensor(srcs[0]), tensor(srcs[1])], [out], name=name))
        elif kind == "AvgPool":
            if d.get("auto_pad", "explicit") not in ("explicit", "notset"):
                raise ValueError(f"AvgPool auto_pad {d['auto_pad']!r} is not supported")
            nodes.append(helper.make_node(
                "AveragePool", [tensor(srcs[0])], [out], name=name, kernel_shape=_ints(d["kernel"]),
                strides=_ints(d["strides"]), pads=_ints(d["pads_begin"]) + _ints(d["pads_end"]),
                count_include_pad=0 if d.get("exclude-pad", "true") == "true" else 1,
                ceil_mode=1 if d.get("rounding_type", "floor") == "ceil" else 0))
        elif kind == "Sigmoid":
            nodes.append(helper.make_node("Sigmoid", [tensor(srcs[0])], [out], name=name))
        else:
            raise ValueError(f"the IR uses operator {kind!r} ({name}), which the converter does not support")
        names[(lid, port)] = out
    if graph_input is None or result is None:
        raise ValueError("the IR has no Parameter or no Result")
    nodes.append(helper.make_node("Flatten", [result], [output_name], name="flatten", axis=1))
    graph = helper.make_graph(
        nodes, "ir_to_onnx", [graph_input],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch", None])],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in sorted(initialisers.items())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="faceapp-models-build", producer_version="1")
    model.ir_version = 8
    for key in sorted(metadata or {}):
        model.metadata_props.add(key=key, value=(metadata or {})[key])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def openvino_outputs(xml: bytes, weights: bytes, x: np.ndarray) -> np.ndarray:
    """The IR itself run by OpenVINO (CPU, fp32) on ``x``, one face at a time: ``(N, D)``."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(xml, ov.Tensor(np.frombuffer(weights, np.uint8))), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    out = compiled.output(0)
    return np.concatenate([np.array(request.infer({0: x[i : i + 1]})[out]).reshape(1, -1) for i in range(len(x))])


def onnxruntime_outputs(graph: bytes, x: np.ndarray, input_name: str = "data") -> np.ndarray:
    """The ONNX graph run by onnxruntime (CPU) on ``x`` in one batch: ``(N, D)``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {input_name: x})[0])

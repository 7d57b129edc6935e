"""How the ops are registered: one schema list, the PT2 tag, the fake kernels'
module, the one order of the cell qparams, and fake kernels that reject what
the real kernels reject."""
import pytest
import torch

import qlstm
import quantized_graph as qg
from helpers import pack, random_bytes, random_model
from qlstm.nn.observed import QUANTIZABLE_CELL_OBSERVED

TENSOR_OPS = ["pack_lstm_layer", "unpack_lstm_layer", "quantized_lstm", "quantized_lstm_float",
              "quantized_lstm_packed", "quantized_lstm_cell", "quantize", "dequantize", "no_backward"]
OTHER_OPS = ["cell_qparam_names", "isa", "set_isa", "set_thread_isa", "thread_isa", "available_isas",
             "peak_macs_per_second"]


def test_every_op_is_registered_with_its_tags():
    registered = {name.split("::")[1] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("qlstm::")}
    assert registered == set(TENSOR_OPS) | set(OTHER_OPS)
    for name in TENSOR_OPS:
        assert torch.Tag.pt2_compliant_tag in getattr(torch.ops.qlstm, name).default.tags, name
    # set_isa changes global state; the queries take no tensors.
    for name in OTHER_OPS:
        assert torch.Tag.pt2_compliant_tag not in getattr(torch.ops.qlstm, name).default.tags, name


def test_a_cpp_only_load_points_at_the_fake_kernels():
    for name in TENSOR_OPS:
        assert torch._C._dispatch_pystub(f"qlstm::{name}", "") == ("qlstm.ops", "")


def test_cell_qparam_names_come_from_the_core_and_every_user_agrees():
    names = tuple(torch.ops.qlstm.cell_qparam_names())
    assert names == ("igates", "hgates", "gates", "fgate_cx", "igate_cgate", "cell", "hidden")
    assert qlstm.ops.CELL_QPARAM_NAMES == names
    assert set(QUANTIZABLE_CELL_OBSERVED) == set(names)
    observed = qlstm.nn.ObservedLSTM(torch.nn.LSTM(3, 4))
    assert tuple(observed.observers[0].keys()) == names
    # The packed header and unpack give them back in that order.
    layer = qg.random_layer(3, 4, True, True, torch.Generator().manual_seed(0))
    assert [tuple(q) for q in zip(qlstm.ops.unpack_lstm_layer(pack(layer)).scales,
                                  qlstm.ops.unpack_lstm_layer(pack(layer)).zero_points)] == [
        (torch.tensor(s, dtype=torch.float32).item(), z) for s, z in layer.qparams]
    with pytest.raises(ValueError, match="qlstm: scales and zero_points must each hold 7 values "
                                         r"\(igates, hgates, gates, fgate_cx, igate_cgate, cell, hidden\)"):
        qlstm.ops.pack_lstm_layer(layer.w_ih, layer.w_ih_scales, layer.w_ih_zps, layer.w_hh,
                                  layer.w_hh_scales, layer.w_hh_zps, layer.b_ih, layer.b_hh,
                                  [0.1] * 6, [0] * 6, True)


def _fake(fn, *args):
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    with FakeTensorMode(shape_env=ShapeEnv()) as mode:
        fn(*(mode.from_tensor(a) if isinstance(a, torch.Tensor) else
             [mode.from_tensor(t) for t in a] if isinstance(a, list) and isinstance(a[0], torch.Tensor)
             else a for a in args))


def _bad_calls():
    layers = random_model(5, 6, 2, False, True, True, seed=1)
    params = [pack(l) for l in layers]
    x = random_bytes(4, 2, 5)
    h = random_bytes(2, 2, 6)
    lstm = torch.ops.qlstm.quantized_lstm
    return [
        ("input must be a torch.uint8", lstm, (x.float(), 0.1, 0, None, 1.0, 0, None, 1.0, 0, params, 6, 2, False, False)),
        ("input must have 3 dimensions", lstm, (x[0], 0.1, 0, None, 1.0, 0, None, 1.0, 0, params, 6, 2, False, False)),
        ("params must hold num_layers", lstm, (x, 0.1, 0, None, 1.0, 0, None, 1.0, 0, params[:1], 6, 2, False, False)),
        (r"params\[1\] must be a torch.uint8", lstm, (x, 0.1, 0, None, 1.0, 0, None, 1.0, 0, [params[0], params[1].char()], 6, 2, False, False)),
        ("h0 must have shape", lstm, (x, 0.1, 0, h[:1], 1.0, 0, None, 1.0, 0, params, 6, 2, False, False)),
        ("c0 must be a torch.uint8", lstm, (x, 0.1, 0, None, 1.0, 0, h.float(), 1.0, 0, params, 6, 2, False, False)),
        (r"input must be a torch.float32 \(or torch.uint8\)", torch.ops.qlstm.quantized_lstm_float, (x.char(), 0.1, 0, None, None, params, 6, 2, False, False)),
        ("h0 must have shape", torch.ops.qlstm.quantized_lstm_float, (x.float(), 0.1, 0, h[:1].float(), None, params, 6, 2, False, False)),
        ("hx must have .* rows", torch.ops.qlstm.quantized_lstm_cell, (random_bytes(4, 5), 0.1, 0, h[0], 1.0, 0, h[0], 1.0, 0, params[0])),
        ("cx must have shape", torch.ops.qlstm.quantized_lstm_cell, (x[0], 0.1, 0, h[0], 1.0, 0, h[0, :1], 1.0, 0, params[0])),
        ("input must be a torch.float32", torch.ops.qlstm.quantize, (x, 0.1, 0)),
        ("input must be a torch.uint8", torch.ops.qlstm.dequantize, (x.float(), 0.1, 0)),
        ("w_hh must have shape", torch.ops.qlstm.pack_lstm_layer,
         (layers[0].w_ih, layers[0].w_ih_scales, layers[0].w_ih_zps, layers[0].w_hh[:5],
          layers[0].w_hh_scales, layers[0].w_hh_zps, None, None, [0.1] * 7, [0] * 7, True)),
    ]


@pytest.mark.parametrize("message,op,args", _bad_calls(), ids=lambda v: v if isinstance(v, str) else "")
def test_fake_kernels_reject_what_the_real_ones_reject(message, op, args):
    with pytest.raises((TypeError, ValueError, RuntimeError), match="qlstm: "):
        op(*args)
    with pytest.raises(RuntimeError, match="qlstm: " + message):
        _fake(op, *args)

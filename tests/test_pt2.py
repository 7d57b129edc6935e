"""PT2: fake kernels, opcheck of every op, torch.compile and torch.export."""
import io

import pytest
import torch

import qlstm
from helpers import assert_same, own_flow_model, pack, random_bytes, random_model

# opcheck's tests; test_autograd_registration does not apply (no op has a
# gradient). pack and unpack give sizes that depend on the data (how many
# weights are -128, the sizes in the blob), which only dynamic shapes express.
OPCHECK_TESTS = ("test_schema", "test_faketensor", "test_aot_dispatch_static",
                 "test_aot_dispatch_dynamic")
DATA_DEPENDENT = ("pack_lstm_layer", "unpack_lstm_layer")


def lstm_layers(I=6, H=7, num_layers=2, bidirectional=True, bias=True, per_channel=True):
    return [pack(l) for l in random_model(I, H, num_layers, bidirectional, bias, per_channel,
                                           seed=I + H)]


def op_samples():
    """(op, args) on representative inputs: every tensor op of the library."""
    layer = random_model(5, 6, 1, False, True, True, seed=1)[0]
    split = random_model(5, 6, 1, False, True, False, seed=2, split_gates=True)[0]
    params2 = lstm_layers()
    # With a projection: h of 4, c of 7.
    proj = [pack(l) for l in random_model(6, 7, 2, True, True, True, seed=3, proj_size=4)]
    params_nobias = lstm_layers(4, 3, 1, False, bias=False, per_channel=False)
    # The accurate mode: float gates, cell and states.
    accurate = [pack(l) for l in random_model(6, 7, 2, True, True, True, seed=4, mode="accurate")]
    x = random_bytes(4, 3, 6, seed=2)
    h0, c0 = random_bytes(4, 3, 7, seed=3), random_bytes(4, 3, 7, seed=4)
    xf = torch.randn(4, 3, 6)
    u = qlstm.ops.unpack_lstm_layer(pack(layer))
    ops = torch.ops.qlstm
    return [
        (ops.pack_lstm_layer.default, tuple(u)),
        (ops.pack_lstm_layer.default, tuple(qlstm.ops.unpack_lstm_layer(pack(split)))),
        (ops.unpack_lstm_layer.default, (pack(layer),)),
        (ops.unpack_lstm_layer.default, (pack(split),)),
        (ops.unpack_lstm_layer.default, (params_nobias[0],)),
        (ops.pack_lstm_layer.default, tuple(qlstm.ops.unpack_lstm_layer(proj[2]))),
        (ops.unpack_lstm_layer.default, (proj[2],)),
        (ops.pack_lstm_layer.default,
         tuple(qlstm.ops.unpack_lstm_layer(accurate[2])) + ("accurate",)),
        (ops.unpack_lstm_layer.default, (accurate[2],)),
        (ops.quantized_lstm_float.default,
         (xf, 0.02, 128, torch.randn(4, 3, 7), torch.randn(4, 3, 7), accurate, 7, 2, True, False)),
        (ops.quantized_lstm_float.default,
         (xf.transpose(0, 1).contiguous(), 0.02, 128, None, None, accurate, 7, 2, True, True)),
        (ops.quantized_lstm_packed.default,
         (torch.randn(7, 6), torch.tensor([3, 2, 1, 1]), 0.02, 128, torch.randn(4, 3, 7),
          torch.randn(4, 3, 7), accurate, 7, 2, True)),
        (ops.quantized_lstm.default,
         (x, 0.05, 128, random_bytes(4, 3, 4, seed=3), 0.02, 100, c0, 0.03, 120, proj, 7, 2, True,
          False, 4)),
        (ops.quantized_lstm_float.default,
         (xf, 0.02, 128, torch.randn(4, 3, 4), torch.randn(4, 3, 7), proj, 7, 2, True, False, 4)),
        (ops.quantized_lstm_packed.default,
         (torch.randn(7, 6), torch.tensor([3, 2, 1, 1]), 0.02, 128, torch.randn(4, 3, 4),
          torch.randn(4, 3, 7), proj, 7, 2, True, 4)),
        (ops.quantized_lstm.default,
         (x, 0.05, 128, h0, 0.02, 100, c0, 0.03, 120, params2, 7, 2, True, False)),
        (ops.quantized_lstm.default,
         (x.transpose(0, 1).contiguous(), 0.05, 128, None, 1.0, 0, None, 1.0, 0, params2, 7, 2,
          True, True)),
        (ops.quantized_lstm.default,
         (random_bytes(2, 5, 4, seed=5), 0.1, 3, None, 1.0, 0, None, 1.0, 0, params_nobias, 3, 1,
          False, False)),
        (ops.quantized_lstm_float.default, (xf, 0.02, 128, None, None, params2, 7, 2, True, False)),
        (ops.quantized_lstm_float.default,
         (xf, 0.02, 128, torch.randn(4, 3, 7), torch.randn(4, 3, 7), params2, 7, 2, True, False)),
        # uint8 input, float states: the quint8 interface's exact streaming.
        (ops.quantized_lstm_float.default,
         (x, 0.05, 128, torch.randn(4, 3, 7), torch.randn(4, 3, 7), params2, 7, 2, True, False)),
        (ops.quantized_lstm_float.default,
         (x.transpose(0, 1).contiguous(), 0.05, 128, None, None, params2, 7, 2, True, True)),
        # PackedSequence layout: lengths 4, 2, 1 (batch_sizes 3, 2, 1, 1); with states
        # (without them the batch is a value in batch_sizes: data-dependent).
        (ops.quantized_lstm_packed.default,
         (torch.randn(7, 6), torch.tensor([3, 2, 1, 1]), 0.02, 128, torch.randn(4, 3, 7),
          torch.randn(4, 3, 7), params2, 7, 2, True)),
        (ops.quantized_lstm_packed.default,
         (random_bytes(7, 6, seed=10), torch.tensor([3, 2, 1, 1]), 0.05, 128, torch.randn(4, 3, 7),
          torch.randn(4, 3, 7), params2, 7, 2, True)),
        (ops.quantized_lstm_cell.default,
         (random_bytes(3, 5, seed=6), 0.05, 128, random_bytes(3, 6, seed=7), 0.02, 10,
          random_bytes(3, 6, seed=8), 0.03, 200, pack(layer))),
        (ops.quantized_lstm_cell.default,
         (random_bytes(3, 5, seed=6), 0.05, 128, random_bytes(3, 6, seed=7), 0.02, 10,
          random_bytes(3, 6, seed=8), 0.03, 200, pack(split))),
        (ops.quantize.default, (torch.randn(5, 4), 0.05, 128)),
        (ops.dequantize.default, (random_bytes(5, 4, seed=9), 0.05, 128)),
    ]


@pytest.mark.parametrize("op,args", op_samples(), ids=lambda v: str(v) if hasattr(v, "_schema") else "")
def test_opcheck(op, args):
    tests = OPCHECK_TESTS
    if str(op).split(".")[1] in DATA_DEPENDENT:
        tests = tuple(t for t in tests if t != "test_aot_dispatch_static")
    torch.library.opcheck(op, args, test_utils=tests)


def test_opcheck_covers_every_tensor_op():
    tested = {str(op).split(".")[1] for op, _ in op_samples()}
    # The kernel-set queries and the qparam names take and return no tensors: nothing to trace.
    queries = {"isa", "set_isa", "set_thread_isa", "thread_isa", "available_isas",
               "peak_macs_per_second", "cell_qparam_names"}
    # What a backward calls: its real kernel always raises (test_module_contract).
    queries.add("no_backward")
    registered = {name.split("::")[1] for name in torch._C._dispatch_get_all_op_names()
                  if name.startswith("qlstm::")}
    assert registered - queries == tested


def test_fake_kernels_give_the_real_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    for op, args in op_samples():
        if op in (torch.ops.qlstm.pack_lstm_layer.default, torch.ops.qlstm.unpack_lstm_layer.default):
            continue  # data-dependent sizes: checked by opcheck's test_faketensor
        real = op(*args)
        with FakeTensorMode(shape_env=ShapeEnv()) as mode:
            fake = op(*[mode.from_tensor(a) if isinstance(a, torch.Tensor) else
                        [mode.from_tensor(t) for t in a] if isinstance(a, list) and a and
                        isinstance(a[0], torch.Tensor) else a for a in args])
        real = real if isinstance(real, tuple) else (real,)
        fake = fake if isinstance(fake, tuple) else (fake,)
        for r, f in zip(real, fake):
            assert tuple(f.shape) == tuple(r.shape) and f.dtype == r.dtype, op


@pytest.mark.parametrize("split_gates,proj_size,mode",
                         [(False, 0, "torch"), (True, 0, "torch"), (False, 5, "torch"),
                          (False, 0, "accurate")])
def test_compile_fullgraph_matches_eager(split_gates, proj_size, mode):
    torch._dynamo.reset()
    q = own_flow_model(split_gates=split_gates, proj_size=proj_size, mode=mode)
    compiled = torch.compile(q, fullgraph=True)
    for T, B in ((7, 2), (3, 5), (11, 1)):
        x = torch.randn(T, B, 6)
        assert_same(compiled(x), q(x))
    lstm = torch.compile(q[0], fullgraph=True)
    state = (torch.randn(4, 2, proj_size or 8), torch.randn(4, 2, 8))
    x = torch.randn(5, 2, 6)
    assert_same(lstm(x, state), q[0](x, state))


def test_compile_streaming_cell_op():
    layer = random_model(5, 6, 1, False, True, True, seed=1)[0]
    params = pack(layer)

    def step(x, h, c):
        return torch.ops.qlstm.quantized_lstm_cell(x, 0.05, 128, h, 0.02, 10, c, 0.03, 200, params)

    compiled = torch.compile(step, fullgraph=True)
    args = (random_bytes(3, 5, seed=6), random_bytes(3, 6, seed=7), random_bytes(3, 6, seed=8))
    for g, e in zip(compiled(*args), step(*args)):
        assert torch.equal(g, e)


@pytest.mark.parametrize("batch_first,split_gates,proj_size,mode",
                         [(False, False, 0, "torch"), (True, False, 0, "torch"),
                          (False, True, 0, "torch"), (True, False, 5, "torch"),
                          (True, False, 0, "accurate")])
def test_export_dynamic_sequence_and_batch_round_trips(batch_first, split_gates, proj_size, mode):
    q = own_flow_model(batch_first=batch_first, split_gates=split_gates, proj_size=proj_size,
                       mode=mode)
    x = torch.randn(2, 7, 6) if batch_first else torch.randn(7, 2, 6)
    T, B = torch.export.Dim("T", min=1, max=4096), torch.export.Dim("B", min=1, max=1024)
    dims = {0: B, 1: T} if batch_first else {0: T, 1: B}
    ep = torch.export.export(q, (x,), dynamic_shapes={"input": dims})
    ops = {n.target for n in ep.graph.nodes if n.op == "call_function"}
    assert torch.ops.qlstm.quantized_lstm_float.default in ops
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    buf.seek(0)
    loaded = torch.export.load(buf)
    for T_, B_ in ((7, 2), (1, 1), (13, 3)):
        x = torch.randn(B_, T_, 6) if batch_first else torch.randn(T_, B_, 6)
        expected = q(x)
        assert_same(ep.module()(x), expected)
        assert_same(loaded.module()(x), expected)

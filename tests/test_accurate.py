"""The accurate mode (mode="accurate": int8 products, float32 gates and cell):
the ops against the pure-PyTorch model (quantized_graph.accurate_lstm) bit for
bit on every kernel set and thread count, the module against float nn.LSTM,
state_dict, streaming, PackedSequence, LSTMCell and errors. TorchScript, the
libtorch runner, torch.compile and torch.export take
helpers.accurate_own_flow_model (test_torchscript, test_pt2)."""
import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

import qlstm
import quantized_graph as qg
from helpers import eager_flow_model, graph_layer, pack, random_bytes, random_model

ISAS = qlstm.available_isas()
XQ = (0.02, 130)
# (I, H): hidden sizes of one unit, under a block, one block, a block and one
# more, several blocks with a short last one.
SIZES = [(3, 5), (9, 1), (16, 16), (7, 17), (13, 31), (40, 100)]


def accurate_model(I, H, num_layers, bidirectional, bias, per_channel, seed, wzp=False):
    return random_model(I, H, num_layers, bidirectional, bias, per_channel, seed, wzp,
                        mode="accurate")


def states(num_layers, D, B, H, seed):
    gen = torch.Generator().manual_seed(seed)
    return (0.5 * torch.randn(num_layers * D, B, H, generator=gen),
            torch.randn(num_layers * D, B, H, generator=gen))


def assert_equal(got, expected, what=""):
    for g, e in zip(got, expected):
        assert g.dtype == torch.float32 and torch.equal(g, e), what


@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("bidirectional,num_layers", [(False, 1), (True, 2), (False, 3), (True, 4)])
@pytest.mark.parametrize("bias,per_channel,wzp", [(True, True, False), (False, False, True),
                                                  (True, False, False)])
def test_lstm_op_matches_model_on_every_kernel_set(I, H, bidirectional, num_layers, bias,
                                                   per_channel, wzp):
    seed = I * 7 + H + num_layers
    layers = accurate_model(I, H, num_layers, bidirectional, bias, per_channel, seed, wzp)
    params = [pack(l) for l in layers]
    T, B, D = 6, 3, 2 if bidirectional else 1
    x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(seed))
    for h0, c0 in ((None, None), states(num_layers, D, B, H, seed + 1)):
        expected = qg.accurate_lstm(x, XQ, h0, c0, layers, num_layers, bidirectional)
        assert expected[0].shape == (T, B, D * H) and expected[2].shape == (num_layers * D, B, H)
        for isa in ISAS:
            with qlstm.use_isa(isa):
                got = qlstm.ops.quantized_lstm_float(x, *XQ, h0, c0, params, H, num_layers,
                                                     bidirectional, False)
                assert_equal(got, expected, isa)
                first = qlstm.ops.quantized_lstm_float(x.transpose(0, 1), *XQ, h0, c0, params, H,
                                                       num_layers, bidirectional, True)
                assert_equal((first[0].transpose(0, 1),) + tuple(first[1:]), expected, isa)


def test_sequences_longer_than_an_igates_chunk_match_model():
    # H = 16: 2048 rows of float igates make a chunk (512 KB), 157 steps of
    # 13, so 200 steps cross a chunk's end in both directions.
    layers = accurate_model(5, 16, 1, True, True, True, seed=8)
    x = torch.randn(200, 13, 5, generator=torch.Generator().manual_seed(9))
    h0, c0 = states(1, 2, 13, 16, seed=10)
    expected = qg.accurate_lstm(x, XQ, h0, c0, layers, 1, True)
    got = qlstm.ops.quantized_lstm_float(x, *XQ, h0, c0, [pack(l) for l in layers], 16, 1, True,
                                         False)
    assert_equal(got, expected)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_split_the_work_and_change_nothing(threads):
    # Large enough that two threads split the input projection and the steps.
    layers = accurate_model(24, 160, 2, True, True, True, seed=4)
    params = [pack(l) for l in layers]
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(5, 9, 24, generator=gen)
    h0, c0 = states(2, 2, 9, 160, seed=6)
    expected = qg.accurate_lstm(x, XQ, h0, c0, layers, 2, True)
    torch.set_num_threads(threads)
    got = qlstm.ops.quantized_lstm_float(x, *XQ, h0, c0, params, 160, 2, True, False)
    assert_equal(got, expected)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("given_state", [True, False])
def test_packed_steps_equal_each_sequence_alone(isa, given_state):
    # Without a state, the reverse direction's sequences wait in zeros while
    # the longer ones step: they must start from the zeros a sequence alone has.
    layers = accurate_model(5, 19, 2, True, True, True, seed=8)
    params = [pack(l) for l in layers]
    gen = torch.Generator().manual_seed(9)
    seqs = [torch.randn(n, 5, generator=gen) for n in (7, 4, 4, 1)]
    packed = pack_sequence(seqs)
    h0, c0 = states(2, 2, len(seqs), 19, seed=10)
    if not given_state:
        h0, c0 = torch.zeros_like(h0), torch.zeros_like(c0)
    with qlstm.use_isa(isa):
        y, h_n, c_n = qlstm.ops.quantized_lstm_packed(
            packed.data, packed.batch_sizes, *XQ, h0 if given_state else None,
            c0 if given_state else None, params, 19, 2, True)
        at = 0
        for t, size in enumerate(packed.batch_sizes.tolist()):
            for b in range(size):
                alone = qlstm.ops.quantized_lstm_float(
                    seqs[b][:, None], *XQ, h0[:, b:b + 1], c0[:, b:b + 1], params, 19, 2, True,
                    False)
                assert torch.equal(y[at + b], alone[0][t, 0])
                if t == 0:
                    assert torch.equal(h_n[:, b], alone[1][:, 0])
                    assert torch.equal(c_n[:, b], alone[2][:, 0])
            at += size


def test_unpack_and_pack_round_trip():
    for per_channel, wzp in ((True, False), (False, True)):
        layer = accurate_model(11, 21, 1, False, True, per_channel, seed=3, wzp=wzp)[0]
        blob = pack(layer)
        assert int(blob[8]) == 9  # the packing version
        u = qlstm.ops.unpack_lstm_layer(blob)
        assert u.mode == "accurate" and not u.split_gates and u.proj_size == 0
        assert u.qparam_names == ("hidden",) == qlstm.ops.cell_qparam_names(mode="accurate")
        assert torch.equal(qlstm.ops.pack_lstm_layer(*u, mode="accurate"), blob)
        assert graph_layer(blob).mode == "accurate"


def test_cell_qparam_names_op_agrees():
    assert tuple(torch.ops.qlstm.cell_qparam_names(False, False, True)) == ("hidden",)


# The module

def float_lstm(seed=0, **kwargs):
    torch.manual_seed(seed)
    return torch.nn.LSTM(6, 12, **kwargs).eval()


def quantize(model, mode="accurate", T=20, seed=1, **kwargs):
    gen = torch.Generator().manual_seed(seed)
    calibration = [torch.randn(T, 4, model.input_size, generator=gen) for _ in range(2)]
    return qlstm.quantize(model, calibration, mode=mode, **kwargs)


def relative_error(got, expected):
    return float((got - expected).norm() / expected.norm())


@torch.no_grad()
def test_module_is_more_accurate_than_the_torch_mode():
    model = float_lstm(num_layers=2, bidirectional=True)
    accurate, default = quantize(model), quantize(model, "torch")
    x = torch.randn(30, 5, 6)
    expected = model(x)
    y, (h, c) = accurate(x)
    assert y.shape == expected[0].shape and h.shape == expected[1][0].shape
    assert c.shape == expected[1][1].shape
    err = relative_error(y, expected[0])
    assert err < 0.015, err
    assert err < 0.5 * relative_error(default(x)[0], expected[0])
    assert relative_error(c, expected[1][1]) < 0.02


@torch.no_grad()
def test_long_memory_cell_stays_accurate():
    # A forget gate near 1: the cell integrates over the whole sequence, where
    # an 8-bit cell state loses its range or its resolution.
    model = float_lstm(seed=1)
    model.bias_ih_l0[12:24] += 3.0
    accurate, default = quantize(model, T=300), quantize(model, "torch", T=300)
    x = 0.5 * torch.randn(300, 4, 6)
    expected = model(x)[0]
    err, err_default = relative_error(accurate(x)[0], expected), relative_error(default(x)[0], expected)
    assert err < 0.03 and err < 0.25 * err_default, (err, err_default)


@torch.no_grad()
def test_module_equals_the_model_of_its_own_layers():
    q = quantize(float_lstm(num_layers=2), seed=2)
    x = torch.randn(9, 3, 6)
    layers = [graph_layer(blob) for blob in q.packed_layers]
    expected = qg.accurate_lstm(x, q.input_qparams, None, None, layers, 2, False)
    y, (h, c) = q(x)
    assert_equal((y, h, c), expected)


@torch.no_grad()
def test_module_shapes_dtypes_and_batch_first():
    model = float_lstm(batch_first=True)
    q = quantize(model)
    x = torch.randn(3, 7, 6)
    y, (h, c) = q(x)
    assert y.shape == (3, 7, 12) and h.shape == c.shape == (1, 3, 12)
    y1, (h1, c1) = q(x[0])
    assert torch.equal(y1, y[0]) and torch.equal(h1, h[:, 0]) and torch.equal(c1, c[:, 0])
    y64, (h64, _) = q(x.double())
    assert y64.dtype == h64.dtype == torch.float64 and torch.equal(y64.float(), y)


@torch.no_grad()
def test_streaming_chunks_equal_one_call():
    q = quantize(float_lstm(num_layers=2))
    x = torch.randn(12, 2, 6)
    whole = q(x)
    state, outs = None, []
    for chunk in x.split([1, 4, 2, 5]):
        y, state = q(chunk, state)
        outs.append(y)
    assert torch.equal(torch.cat(outs), whole[0])
    assert torch.equal(state[0], whole[1][0]) and torch.equal(state[1], whole[1][1])


@torch.no_grad()
def test_cell_steps_equal_the_lstm():
    torch.manual_seed(3)
    cell = torch.nn.LSTMCell(6, 12).eval()
    gen = torch.Generator().manual_seed(4)
    q = qlstm.quantize(cell, [torch.randn(4, 6, generator=gen) for _ in range(3)], mode="accurate")
    assert isinstance(q, qlstm.nn.LSTMCell) and "mode='accurate'" in repr(q)
    lstm = qlstm.nn.LSTM(6, 12, mode="accurate")
    state = {k.replace("weight_ih", "weight_ih_l0").replace("weight_hh", "weight_hh_l0")
             .replace("bias_ih", "bias_ih_l0").replace("bias_hh", "bias_hh_l0")
             .replace("qparams_scales", "qparams_scales_l0")
             .replace("qparams_zero_points", "qparams_zero_points_l0"): v
             for k, v in q.state_dict().items()}
    lstm.load_state_dict(state)
    x = torch.randn(6, 2, 6)
    expected, (h_n, c_n) = lstm(x)
    hx = None
    for t in range(6):
        hx = q(x[t], hx)
        assert torch.equal(hx[0], expected[t])
    assert torch.equal(hx[1], c_n[0])
    h1, c1 = q(x[0, 0])  # unbatched
    assert torch.equal(h1, q(x[0])[0][0]) and torch.equal(c1, q(x[0])[1][0])


@torch.no_grad()
def test_packed_sequence_module():
    q = quantize(float_lstm(bidirectional=True))
    seqs = [torch.randn(n, 6) for n in (2, 5, 3)]
    out, (h, c) = q(pack_sequence(seqs, enforce_sorted=False))
    for b, s in enumerate(seqs):
        y, (hb, cb) = q(s[:, None])
        assert torch.equal(torch.nn.utils.rnn.unpack_sequence(out)[b], y[:, 0])
        assert torch.equal(h[:, b], hb[:, 0]) and torch.equal(c[:, b], cb[:, 0])


def test_state_dict_round_trip_and_mode_mismatch():
    q = quantize(float_lstm(num_layers=2))
    sd = q.state_dict()
    assert sd["qparams_scales_l1"].shape == (1,)
    loaded = qlstm.nn.LSTM(6, 12, 2, mode="accurate")
    loaded.load_state_dict(sd)
    x = torch.randn(5, 2, 6)
    with torch.no_grad():
        assert_equal(loaded(x)[0:1], q(x)[0:1])
    assert repr(loaded) == repr(q) and "mode='accurate'" in repr(q)
    with pytest.raises(RuntimeError, match="a mode 'accurate' LSTM's, and this module is mode 'torch'"):
        qlstm.nn.LSTM(6, 12, 2).load_state_dict(sd)
    torch_sd = quantize(float_lstm(num_layers=2), "torch").state_dict()
    with pytest.raises(RuntimeError, match="a mode 'torch' LSTM's, and this module is mode 'accurate'"):
        qlstm.nn.LSTM(6, 12, 2, mode="accurate").load_state_dict(torch_sd)


def test_observed_lstm_observes_input_and_h_only():
    prepared = qlstm.prepare(torch.nn.Sequential(float_lstm()), mode="accurate")
    assert prepared[0].mode == "accurate"
    assert list(prepared[0].observers[0].keys()) == ["hidden"]
    prepared(torch.randn(4, 2, 6))
    q = qlstm.convert(prepared)
    assert q[0].mode == "accurate" and q[0].cell_qparams is None


def test_pytorch_eager_flow_keeps_the_torch_numerics():
    # Its observers fix the torch numerics: a quantizable LSTM converts to mode "torch".
    model = eager_flow_model()
    assert model.lstm.mode == "torch" and "mode=" not in repr(model.lstm)


def test_module_errors():
    q = quantize(float_lstm())
    x = torch.randn(4, 2, 6)
    with pytest.raises(TypeError, match="qlstm: an LSTM in mode 'accurate' takes a floating-point input"):
        q(torch.quantize_per_tensor(x, 0.05, 128, torch.quint8))
    h = torch.quantize_per_tensor(torch.zeros(1, 2, 12), 0.05, 128, torch.quint8)
    with pytest.raises(TypeError, match="floating-point states, got h0 of torch.quint8"):
        q(x, (h, torch.zeros(1, 2, 12)))
    with pytest.raises(ValueError, match="qlstm: mode must be one of"):
        qlstm.quantize(float_lstm(), [x], mode="fast")
    with pytest.raises(ValueError, match="qlstm: mode must be one of"):
        qlstm.nn.LSTM(6, 12, mode="Accurate")
    with pytest.raises(ValueError, match="pass split_gates=False"):
        qlstm.prepare(float_lstm(), split_gates=True, mode="accurate")
    with pytest.raises(ValueError, match="does not support proj_size yet"):
        qlstm.prepare(torch.nn.LSTM(6, 12, proj_size=4), mode="accurate")
    with pytest.raises(ValueError, match="does not support proj_size yet"):
        qlstm.nn.LSTM(6, 12, proj_size=4, mode="accurate")


# Op errors

def test_op_errors():
    layer = accurate_model(5, 6, 1, False, True, True, seed=1)[0]
    blob = pack(layer)
    torch_blob = pack(random_model(5, 6, 1, False, True, True, seed=1)[0])
    u = qlstm.ops.unpack_lstm_layer(torch_blob)
    with pytest.raises(ValueError, match="in the accurate mode scales and zero_points must each "
                                         "hold 1 value"):
        qlstm.ops.pack_lstm_layer(*u, mode="accurate")
    with pytest.raises(ValueError, match='qlstm: mode must be "torch" or "accurate", got "fast"'):
        qlstm.ops.pack_lstm_layer(*u, mode="fast")
    proj = qlstm.ops.unpack_lstm_layer(pack(random_model(5, 6, 1, False, True, True, seed=2,
                                                         proj_size=3)[0]))
    with pytest.raises(ValueError, match="the accurate mode does not support a projection"):
        qlstm.ops.pack_lstm_layer(*proj[:8], [0.01], [128], *proj[10:], mode="accurate")
    x = torch.randn(3, 2, 5)
    xb = random_bytes(3, 2, 5)
    with pytest.raises(ValueError, match='params hold layers packed in mode "accurate"'):
        qlstm.ops.quantized_lstm(xb, 0.05, 128, None, 1.0, 0, None, 1.0, 0, [blob], 6, 1, False,
                                 False)
    with pytest.raises(ValueError, match="quantized_lstm_cell takes uint8 states"):
        qlstm.ops.quantized_lstm_cell(xb[0], 0.05, 128, xb[0, :, :1].expand(2, 6).contiguous(),
                                      0.05, 128, xb[0, :, :1].expand(2, 6).contiguous(), 0.05,
                                      128, blob)
    with pytest.raises(TypeError, match='input must be a Float tensor for layers packed in mode '
                                        '"accurate"'):
        qlstm.ops.quantized_lstm_float(xb, 0.05, 128, None, None, [blob], 6, 1, False, False)
    with pytest.raises(TypeError, match='data must be a Float tensor'):
        qlstm.ops.quantized_lstm_packed(xb[0], torch.tensor([2]), 0.05, 128, None, None, [blob],
                                        6, 1, False)
    with pytest.raises(ValueError, match='params\\[1\\] was packed in mode "torch", expected every '
                                         'layer in params\\[0\\]\'s mode "accurate"'):
        qlstm.ops.quantized_lstm_float(x, 0.05, 128, None, None, [blob, torch_blob], 6, 1, True,
                                       False)
    with pytest.raises(ValueError, match="h0 must have shape"):
        qlstm.ops.quantized_lstm_float(x, 0.05, 128, torch.zeros(1, 2, 5), None, [blob], 6, 1,
                                       False, False)

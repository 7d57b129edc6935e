"""Variable-length batches (PackedSequence): every sequence of a packed batch
gets the bytes it gets alone, in one op call per LSTM."""
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence, pad_packed_sequence

import qlstm
import quantized_graph as qg
from helpers import pack, random_model

LENGTHS = [5, 9, 1, 9, 3]  # unsorted, with ties, 1 and the maximum


def quantized_lstm(num_layers, bidirectional, batch_first=False, I=4, H=7):
    torch.manual_seed(num_layers + 2 * bidirectional)
    lstm = torch.nn.LSTM(I, H, num_layers, bidirectional=bidirectional, batch_first=batch_first).eval()
    return lstm, qlstm.quantize(lstm, [torch.randn(9, 3, I) if not batch_first else torch.randn(3, 9, I)])


def sequences(seed=0, I=4):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, I, generator=gen) for n in LENGTHS]


@pytest.mark.parametrize("isa", qlstm.available_isas())
@pytest.mark.parametrize("threads", [1, 2])
# At 48 x 64 there is the work for which 2 threads split the batch, each part
# with its own clipped batch sizes (some zero); at 4 x 7 they split each step.
@pytest.mark.parametrize("num_layers,bidirectional,I,H", [
    (1, False, 4, 7), (2, False, 4, 7), (1, True, 4, 7), (3, True, 4, 7),
    (1, False, 48, 64), (2, True, 48, 64)])
def test_each_sequence_gets_its_bytes_alone(isa, threads, num_layers, bidirectional, I, H):
    _, m = quantized_lstm(num_layers, bidirectional, I=I, H=H)
    seqs = sequences(I=I)
    D = 2 if bidirectional else 1
    gen = torch.Generator().manual_seed(1)
    h0 = torch.randn(num_layers * D, len(seqs), H, generator=gen) * 0.3
    c0 = torch.randn(num_layers * D, len(seqs), H, generator=gen) * 0.3
    torch.set_num_threads(threads)
    with qlstm.use_isa(isa), torch.no_grad():
        for state in (None, (h0, c0)):
            packed = pack_sequence(seqs, enforce_sorted=False)
            out, (h_n, c_n) = m(packed, state)
            assert isinstance(out, torch.nn.utils.rnn.PackedSequence)
            padded, lengths = pad_packed_sequence(out)
            assert lengths.tolist() == LENGTHS
            for b, x in enumerate(seqs):
                alone_state = None if state is None else (h0[:, b:b + 1], c0[:, b:b + 1])
                if alone_state is None:  # zeros: the packed op's missing state
                    alone_state = (torch.zeros(num_layers * D, 1, H), torch.zeros(num_layers * D, 1, H))
                y, (h, c) = m(x[:, None], alone_state)
                assert torch.equal(padded[:len(x), b], y[:, 0]), b
                assert torch.equal(padded[len(x):, b], torch.zeros_like(padded[len(x):, b]))
                assert torch.equal(h_n[:, b], h[:, 0]) and torch.equal(c_n[:, b], c[:, 0]), b


def test_the_op_against_the_graph():
    layers = random_model(4, 7, 2, True, True, True, seed=3)
    params = [pack(l) for l in layers]
    packed = pack_sequence(sequences(2), enforce_sorted=False)
    xq = (0.03, 120)
    y, h_n, c_n = qlstm.ops.quantized_lstm_packed(packed.data, packed.batch_sizes, *xq, None, None,
                                                  params, 7, 2, True)
    assert y.shape == (sum(LENGTHS), 14) and h_n.shape == (4, 5, 7)
    order = packed.sorted_indices.tolist()
    seqs = sequences(2)
    first = [0]
    for n in packed.batch_sizes.tolist():
        first.append(first[-1] + n)
    for j, b in enumerate(order):
        x = qg.quantize_per_tensor(seqs[b][:, None], xq)
        zeros = torch.stack([torch.full((1, 7), l.q("hidden")[1], dtype=torch.uint8) for l in layers])
        czeros = torch.stack([torch.full((1, 7), l.q("cell")[1], dtype=torch.uint8) for l in layers])
        ey, eh, ec = qg.lstm(x, xq, zeros, [l.q("hidden") for l in layers], czeros,
                             [l.q("cell") for l in layers], layers, 2, True, stacked=False)
        for t in range(len(seqs[b])):
            assert torch.equal(y[first[t] + j], qlstm.ops.dequantize(ey[t, 0], *layers[2].q("hidden")))
        for i in range(4):
            assert torch.equal(h_n[i, j], qlstm.ops.dequantize(eh[i][0][0], *eh[i][1]))
            assert torch.equal(c_n[i, j], qlstm.ops.dequantize(ec[i][0][0], *ec[i][1]))


def test_sorted_and_batch_first_and_dtypes():
    lstm, m = quantized_lstm(2, False, batch_first=True)
    seqs = sorted(sequences(), key=len, reverse=True)
    padded = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True)
    lengths = torch.tensor([len(s) for s in seqs])
    with torch.no_grad():
        out, (h_n, _) = m(pack_padded_sequence(padded, lengths, batch_first=True))
        ref, (ref_h, _) = lstm(pack_padded_sequence(padded, lengths, batch_first=True))
        assert out.sorted_indices is None and torch.equal(out.batch_sizes, ref.batch_sizes)
        # Against float (qlstm's default numerics, a small calibration).
        assert float((out.data - ref.data).norm() / ref.data.norm()) < 0.15
        assert float((h_n - ref_h).norm() / ref_h.norm()) < 0.15
        out64, (h64, _) = m(pack_padded_sequence(padded.double(), lengths, batch_first=True))
        assert out64.data.dtype == h64.dtype == torch.float64 and torch.equal(out64.data.float(), out.data)


def test_calibration_and_errors():
    lstm = torch.nn.LSTM(4, 7).eval()
    packed = pack_sequence(sequences(), enforce_sorted=False)
    m = qlstm.quantize(lstm, [packed])
    with torch.no_grad():
        out, _ = m(packed)
        ref, _ = lstm(packed)
    assert float((out.data - ref.data).norm() / ref.data.norm()) < 0.15
    layers = [qlstm.ops.pack_lstm_layer(*qlstm.ops.unpack_lstm_layer(p)) for p in m.packed_layers]
    bs = packed.batch_sizes
    with pytest.raises(ValueError, match="qlstm: batch_sizes must be >= 1 and non-increasing"):
        qlstm.ops.quantized_lstm_packed(packed.data, bs.flip(0), 0.1, 0, None, None, layers, 7, 1, False)
    with pytest.raises(ValueError, match=r"qlstm: data must have sum\(batch_sizes\) = 27 rows, got 26"):
        qlstm.ops.quantized_lstm_packed(packed.data[1:], bs, 0.1, 0, None, None, layers, 7, 1, False)
    with pytest.raises(TypeError, match="qlstm: batch_sizes must be a Long tensor"):
        qlstm.ops.quantized_lstm_packed(packed.data, bs.int(), 0.1, 0, None, None, layers, 7, 1, False)
    with pytest.raises(ValueError, match="qlstm: a PackedSequence's data must have 4 features"):
        m(pack_sequence([torch.randn(3, 5)]))
    with pytest.raises(RuntimeError, match="qlstm: the qlstm ops are inference-only"):
        m(pack_sequence([torch.randn(3, 4, requires_grad=True)]))[0].data.sum().backward()

"""Blobs rewritten while calls run, changed blobs, all-or-nothing state_dict
loads, uncalibrated conversion, backward, per-thread kernel sets, oversized
params, and silent coercions. Run again under ASan + UBSan in CI."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import qlstm
from helpers import pack, random_bytes, random_model

HERE = os.path.dirname(os.path.abspath(__file__))
# Blob version 6: a 256-byte header whose -128 list lengths are int64s at these offsets.
HEADER_BYTES, LIST_LENGTHS = 256, (160, 168)


def _list_offsets(blob: torch.Tensor):
    """Byte offsets of the -128 lists of W_ih and W_hh: the blob's last sections."""
    header = blob[:HEADER_BYTES].numpy()
    n_ih, n_hh = (int(np.frombuffer(header[o:o + 8].tobytes(), np.int64)[0]) for o in LIST_LENGTHS)
    align = lambda n: (n + 63) // 64 * 64  # noqa: E731
    hh = blob.numel() - align(4 * n_hh)
    return hh - align(4 * n_ih), n_ih, hh, n_hh


@pytest.mark.parametrize("isa", qlstm.available_isas())
@pytest.mark.parametrize("mode", ["torch", "accurate"])
def test_rewriting_a_blob_during_calls_stays_inside_the_call_buffers(isa, mode):
    """Another thread rewrites the header sizes, the -128 lists (k = 32767,
    past the matrix) and weights of a blob in use, through numpy (no version
    counter), while calls run: every call either returns or raises a qlstm:
    error (under ASan: no out-of-bounds access either), in both modes."""
    layers = random_model(24, 20, 1, False, True, True, seed=3, mode=mode)
    P = pack(layers[0])
    ih, n_ih, hh, n_hh = _list_offsets(P)
    assert n_ih > 0 and n_hh > 0
    x = random_bytes(6, 3, 24, seed=1)
    h0 = random_bytes(1, 3, 20, seed=2)
    xf, h0f = torch.randn(6, 3, 24), 0.5 * torch.randn(1, 3, 20)

    def calls_of_the_mode():
        if mode == "accurate":
            qlstm.ops.quantized_lstm_float(xf, 0.05, 128, h0f, h0f, [P], 20, 1, False, False)
            qlstm.ops.quantized_lstm_float(xf[:1], 0.05, 128, None, None, [P], 20, 1, False, False)
            return
        qlstm.ops.quantized_lstm(x, 0.05, 128, h0, 0.02, 128, h0, 0.02, 128, [P], 20, 1, False,
                                 False)
        qlstm.ops.quantized_lstm_cell(x[0], 0.05, 128, h0[0], 0.02, 128, h0[0], 0.02, 128, P)

    calls_of_the_mode()
    raw = P.numpy()
    original = raw.copy()
    entries = raw[ih:hh + 4 * n_hh].view(np.uint32)
    stop = threading.Event()

    def rewrite():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            which = rng.integers(4)
            if which == 0:
                entries[:] |= np.uint32(0x7FFF)  # every k of both lists to 32767
            elif which == 1:
                raw[16:32] = 0xFF  # input and hidden size
            elif which == 2:
                raw[rng.integers(HEADER_BYTES, ih, 64)] = rng.integers(0, 256, 64, dtype=np.uint8)
            raw[:] = original

    writer = threading.Thread(target=rewrite)
    writer.start()
    calls = errors = 0
    try:
        with qlstm.use_isa(isa):
            for _ in range(300):
                try:
                    calls_of_the_mode()
                    calls += 1
                except ValueError as e:
                    assert str(e).startswith("qlstm: "), e
                    errors += 1
    finally:
        stop.set()
        writer.join()
    assert calls + errors == 300


def test_a_blob_given_other_memory_is_checked_again():
    layers = random_model(5, 6, 1, False, True, True, seed=4)
    P = pack(layers[0])
    x = random_bytes(3, 2, 5)
    call = lambda: qlstm.ops.quantized_lstm(x, 0.1, 100, None, 1.0, 0, None, 1.0, 0, [P], 6, 1,  # noqa: E731
                                            False, False)
    call()
    altered = P.clone()
    altered[200] ^= 1
    P.data = altered  # the tensor keeps its version counter, its data moves
    with pytest.raises(ValueError, match="bytes do not match its checksum"):
        call()


def test_params_are_checked_before_they_are_copied():
    # Run alone: the peak memory of this process must not grow by the expanded size.
    code = (
        "import torch, qlstm\n"
        "def hwm():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n"
        "base = hwm()\n"
        "x = torch.zeros(2, 1, 3, dtype=torch.uint8)\n"
        "for n in (1_500_000_000, 2 ** 40):\n"
        "    p = torch.zeros(1, dtype=torch.uint8).expand(n)\n"
        "    try:\n"
        "        torch.ops.qlstm.quantized_lstm(x, 0.1, 0, None, 1.0, 0, None, 1.0, 0, [p], 4, 1, False, False)\n"
        "    except ValueError as e:\n"
        "        assert 'qlstm: params[0] must be a packed layer' in str(e), e\n"
        "    else:\n"
        "        raise AssertionError('accepted')\n"
        "print(hwm() - base)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) < 100_000  # kB


def test_a_header_that_disagrees_with_the_size_fails_before_the_copy():
    P = pack(random_model(5, 6, 1, False, True, True, seed=4)[0])
    longer = torch.cat([P, torch.zeros(64, dtype=torch.uint8)])
    x = random_bytes(3, 2, 5)
    with pytest.raises(ValueError, match=r"qlstm: params\[0\] must be a packed layer .* but it has "
                                         rf"{longer.numel()} bytes where its header says {P.numel()}"):
        qlstm.ops.quantized_lstm(x, 0.1, 100, None, 1.0, 0, None, 1.0, 0, [longer], 6, 1, False, False)


def test_use_isa_blocks_in_threads_do_not_leak():
    if len(qlstm.available_isas()) < 2:
        pytest.skip("one kernel set on this CPU")
    before = qlstm.isa()
    first, second = qlstm.available_isas()[:2]
    # Thread A enters, then B, then A leaves, then B: the order in which blocks
    # that set the process-wide set would leave B's "previous" (A's) behind.
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    inside = {}

    def a():
        with qlstm.use_isa(first):
            a_in.set()
            b_in.wait()
            inside["a"] = qlstm.isa()
        a_out.set()

    def b():
        a_in.wait()
        with qlstm.use_isa(second):
            b_in.set()
            a_out.wait()
            inside["b"] = qlstm.isa()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside == {"a": first, "b": second}
    assert qlstm.isa() == before
    with qlstm.use_isa(first):
        with qlstm.use_isa(second):
            assert qlstm.isa() == second
        assert qlstm.isa() == first
    assert qlstm.isa() == before


def test_set_isa_is_for_the_process_and_use_isa_for_the_thread():
    before = qlstm.isa()
    try:
        with qlstm.use_isa(before):
            qlstm.set_isa("scalar")
            assert qlstm.isa() == before  # this thread's block wins
        assert qlstm.isa() == "scalar"
        seen = []
        t = threading.Thread(target=lambda: seen.append(qlstm.isa()))
        t.start()
        t.join()
        assert seen == ["scalar"]
    finally:
        qlstm.set_isa(before)
    with pytest.raises(ValueError, match="qlstm: use_isa's name must name an instruction set"):
        with qlstm.use_isa("sse2"):
            pass
    assert qlstm.isa() == before


@pytest.mark.parametrize("value,message", [
    (127.9, r"qlstm: zero_points\[3\] must be an integer, got 127.9"),
    ("3", r"qlstm: zero_points\[3\] must be an integer, got '3'"),
    (True, r"qlstm: zero_points\[3\] must be an integer, got True"),
])
def test_pack_rejects_zero_points_that_are_not_integers(value, message):
    layer = random_model(3, 4, 1, False, True, True, seed=1)[0]
    zps = [z for _, z in layer.qparams]
    zps[3] = value
    with pytest.raises(TypeError, match=message):
        qlstm.ops.pack_lstm_layer(layer.w_ih, layer.w_ih_scales, layer.w_ih_zps, layer.w_hh,
                                  layer.w_hh_scales, layer.w_hh_zps, layer.b_ih, layer.b_hh,
                                  [s for s, _ in layer.qparams], zps, True)
    with pytest.raises(TypeError, match=r"qlstm: scales\[0\] must be a number, got '0.1'"):
        qlstm.ops.pack_lstm_layer(layer.w_ih, layer.w_ih_scales, layer.w_ih_zps, layer.w_hh,
                                  layer.w_hh_scales, layer.w_hh_zps, layer.b_ih, layer.b_hh,
                                  ["0.1"] + [0.1] * 6, [z for _, z in layer.qparams], True)

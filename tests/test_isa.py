"""Every kernel set against the scalar reference, bit for bit, and the run-time choice of set."""
import os
import platform
import subprocess
import sys

import pytest
import torch

import qlstm
from helpers import near_ties, pack, random_bytes, random_model

# The vector sets of this machine's architecture (a CPU without some of them skips those).
ALL_ISAS = ["neon", "neon_dot"] if platform.machine() in ("aarch64", "arm64") else [
    "avx2", "avx_vnni", "avx512_vnni", "avx512_vnni_vbmi"]


def runnable(name):
    if name not in qlstm.available_isas():
        pytest.skip(f"this CPU cannot run {name}")
    return name


def run_lstm(isa, x, h0, c0, packed, num_layers, bidirectional):
    with qlstm.use_isa(isa):
        return qlstm.ops.quantized_lstm(x, 0.05, 128, h0, 0.011, 120, c0, 0.021, 131, packed,
                                        h0.shape[2], num_layers, bidirectional, False)


# Sizes around the vector widths (8, 16 rows; 4 k), the register tiles and
# the epilogue's groups of unit blocks (H = 60: four blocks, the last partial).
SIZES = [(1, 1), (3, 5), (13, 31), (64, 33), (17, 64), (40, 100), (130, 47), (20, 60)]


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("I,H", SIZES)
@pytest.mark.parametrize("B", [1, 2, 3, 5, 9])
@pytest.mark.parametrize("wzp,split", [(False, False), (True, False), (True, True)])
def test_lstm_matches_scalar(isa, I, H, B, wzp, split):
    runnable(isa)
    seed = I * 31 + H + B
    layers = random_model(I, H, 2, True, True, not split, seed, weight_zero_points=wzp,
                          split_gates=split)
    packed = [pack(l) for l in layers]
    x = random_bytes(5, B, I, seed=seed)
    h0, c0 = random_bytes(4, B, H, seed=seed + 1), random_bytes(4, B, H, seed=seed + 2)
    expected = run_lstm("scalar", x, h0, c0, packed, 2, True)
    got = run_lstm(isa, x, h0, c0, packed, 2, True)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("T", [15, 16, 17, 40])
@pytest.mark.parametrize("wzp", [False, True])
def test_batch_one_sequences_match_scalar(isa, T, wzp):
    # At batch 1, the AVX-512 sets project each chunk of 8 steps' inputs during
    # the 8 steps before (StepRider): lengths around the chunks, both
    # directions, and a second layer whose input (2 H) is wider than H.
    runnable(isa)
    layers = random_model(24, 40, 2, True, True, True, seed=T, weight_zero_points=wzp)
    packed = [pack(l) for l in layers]
    x = random_bytes(T, 1, 24, seed=T + 1)
    h0, c0 = random_bytes(4, 1, 40, seed=T + 2), random_bytes(4, 1, 40, seed=T + 3)
    expected = run_lstm("scalar", x, h0, c0, packed, 2, True)
    got = run_lstm(isa, x, h0, c0, packed, 2, True)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("activation", [0, 1, 127, 128, 129, 255])
def test_extreme_operands_match_scalar(isa, activation):
    # Weights of only 127 and -128 against constant activations: where a
    # saturating int16 multiply-add, or a negated -128, would go wrong (avx2
    # multiplies rows of bytes <= 128 plainly: 128 and 129 sit either side).
    runnable(isa)
    layer = random_model(37, 29, 1, False, True, True, seed=5)[0]
    gen = torch.Generator().manual_seed(0)
    sign = torch.randint(0, 2, layer.w_ih.shape, generator=gen).bool()
    layer.w_ih[:] = torch.where(sign, 127, -128).to(torch.int8)
    layer.w_hh[:] = torch.where(sign[:, :29], -128, 127).to(torch.int8)
    layer.w_hh[:7] = -128
    packed = [pack(layer)]
    x = torch.full((3, 4, 37), activation, dtype=torch.uint8)
    h0 = torch.full((1, 4, 29), activation, dtype=torch.uint8)
    c0 = torch.zeros(1, 4, 29, dtype=torch.uint8)
    expected = run_lstm("scalar", x, h0, c0, packed, 1, False)
    got = run_lstm(isa, x, h0, c0, packed, 1, False)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("B", [1, 4])
def test_minus128_weights_in_one_panel_of_a_pass_match_scalar(isa, B):
    # A single row multiplies two panels per pass (gates i and f, then g and
    # o, in W_hh): -128 weights, which have no int8 opposite, in the forget
    # gate's rows only, the pass's first panel none. Bytes on both sides of
    # 128 keep avx2 on its exact sequence.
    runnable(isa)
    layer = random_model(37, 29, 1, False, True, True, seed=11)[0]
    for w in (layer.w_ih, layer.w_hh):
        w.clamp_(-127, 127)
        w[29 + 3, :9] = -128
        w[29 + 20, -5:] = -128
    packed = [pack(layer)]
    x, h0 = random_bytes(3, B, 37, seed=1), random_bytes(1, B, 29, seed=2)
    c0 = random_bytes(1, B, 29, seed=3)
    expected = run_lstm("scalar", x, h0, c0, packed, 1, False)
    got = run_lstm(isa, x, h0, c0, packed, 1, False)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("bound", [64, 65])
@pytest.mark.parametrize("B", [1, 4])
def test_narrow_weights_against_full_range_activations_match_scalar(isa, bound, B):
    # Weights in [-64, 64] mark their matrix narrow, and avx2 then multiplies
    # every row plainly (2 * 255 * 64 fits int16); 65 must not: pairs of
    # equal-signed bounds against bytes of 255 pass int16 there.
    runnable(isa)
    layer = random_model(37, 29, 1, False, True, True, seed=13)[0]
    gen = torch.Generator().manual_seed(bound)
    for w in (layer.w_ih, layer.w_hh):
        w.copy_(torch.randint(-bound, bound + 1, w.shape, generator=gen, dtype=torch.int8))
        w[:, 4:12] = bound
        w[3, :] = -bound
    blob = pack(layer)
    narrow_bits = 64 | 128  # the header's flags: W_ih and W_hh narrow
    assert int(blob[12]) & narrow_bits == (narrow_bits if bound <= 64 else 0)
    x = random_bytes(3, B, 37, seed=1)
    x[:, :, :16] = 255
    h0, c0 = torch.full((1, B, 29), 255, dtype=torch.uint8), random_bytes(1, B, 29, seed=3)
    expected = run_lstm("scalar", x, h0, c0, [blob], 1, False)
    got = run_lstm(isa, x, h0, c0, [blob], 1, False)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("v", [127, 128])
@pytest.mark.parametrize("w", [64, -64])
@pytest.mark.parametrize("B", [1, 4])
def test_pair_sums_at_the_int16_boundary_match_scalar(isa, v, w, B):
    # Against narrow weights, avx2 sums two groups of 4 products at a time
    # for rows whose bytes are all <= 127: 4 * 127 * 64 fits int16,
    # 4 * 128 * 64 does not, so rows of 128 must take the plain sequence.
    runnable(isa)
    layer = random_model(37, 29, 1, False, True, True, seed=17)[0]
    for m in (layer.w_ih, layer.w_hh):
        m.fill_(w)
    blob = pack(layer)
    x = torch.full((3, B, 37), v, dtype=torch.uint8)
    h0, c0 = torch.full((1, B, 29), v, dtype=torch.uint8), random_bytes(1, B, 29, seed=3)
    expected = run_lstm("scalar", x, h0, c0, [blob], 1, False)
    got = run_lstm(isa, x, h0, c0, [blob], 1, False)
    for e, g in zip(expected, got):
        assert torch.equal(e, g)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("mode", ["torch", "accurate"])
@pytest.mark.parametrize("B", [1, 6])
def test_seven_bit_model_matches_scalar(isa, mode, B):
    # qlstm.quantize with 7-bit weights and activations: the rows the model
    # makes (input, h of every step, the second layer's input) are mostly
    # <= 127, some past the calibrated range, so avx2 runs both forms.
    runnable(isa)
    torch.manual_seed(5)
    model = torch.nn.LSTM(40, 48, 2).eval()
    calibration = torch.randn(20, 3, 40)
    q = qlstm.quantize(model, [calibration], observer=qlstm.NARROW_ACTIVATION_OBSERVER,
                       weight_observer=qlstm.NARROW_WEIGHT_OBSERVER, mode=mode)
    scale, zero_point = q.input_qparams
    calibrated = qlstm.ops.quantize(calibration, scale, zero_point)
    assert float((calibrated <= 127).float().mean()) > 0.99  # 7 bits, the histogram's tails clipped
    x = 1.5 * torch.randn(30, B, 40)
    with torch.no_grad(), qlstm.use_isa("scalar"):
        expected = q(x)
    with torch.no_grad(), qlstm.use_isa(isa):
        got = q(x)
    assert torch.equal(got[0], expected[0])
    for e, g in zip(expected[1], got[1]):
        assert torch.equal(e, g)


@pytest.mark.parametrize("isa", ["scalar"] + ALL_ISAS)
def test_cell_matches_scalar(isa):
    runnable(isa)
    layer = random_model(45, 70, 1, False, True, True, seed=3)[0]
    packed = pack(layer)
    x, h, c = random_bytes(6, 45, seed=1), random_bytes(6, 70, seed=2), random_bytes(6, 70, seed=3)

    def step(name):
        with qlstm.use_isa(name):
            return qlstm.ops.quantized_lstm_cell(x, 0.04, 120, h, 0.02, 110, c, 0.03, 125, packed)

    for e, g in zip(step("scalar"), step(isa)):
        assert torch.equal(e, g)


@pytest.mark.parametrize("isa", ALL_ISAS)
@pytest.mark.parametrize("n", [0, 1, 7, 8, 15, 16, 17, 33, 200_003])
@pytest.mark.parametrize("scale,zero_point", [(0.05, 128), (2.0 ** -5, 0), (1e-30, 255), (3e38, 7)])
def test_quantize_and_dequantize_match_scalar(isa, n, scale, zero_point):
    runnable(isa)
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=gen) * 8
    # Ties of every rounding, extremes, NaN and infinities, and values next to
    # a tie, where the zero point's addition before the rounding decides.
    special = torch.cat([torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 1e30, -1e30, float("inf"),
                                       float("-inf"), float("nan"), 0.0, -0.0]) * scale,
                         near_ties(scale, zero_point)])
    x[:min(n, special.numel())] = special[:n]
    b = torch.randint(0, 256, (n,), generator=gen, dtype=torch.uint8)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        with qlstm.use_isa("scalar"):
            want = qlstm.ops.quantize(x, scale, zero_point), qlstm.ops.dequantize(b, scale, zero_point)
        with qlstm.use_isa(isa):
            got = qlstm.ops.quantize(x, scale, zero_point), qlstm.ops.dequantize(b, scale, zero_point)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("isa", ["scalar"] + ALL_ISAS)
def test_results_do_not_depend_on_thread_count(isa):
    runnable(isa)
    # Big enough that the ops split both the input projection and each step.
    layers = random_model(96, 160, 1, True, True, True, seed=11)
    packed = [pack(l) for l in layers]
    x = random_bytes(7, 12, 96, seed=4)
    h0, c0 = random_bytes(2, 12, 160, seed=5), random_bytes(2, 12, 160, seed=6)
    results = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        results.append(run_lstm(isa, x, h0, c0, packed, 1, True))
        results.append(run_lstm(isa, x[:, :1], h0[:, :1], c0[:, :1], packed, 1, True))
    for r in results[2:]:
        expected = results[0] if r[0].shape[1] == 12 else results[1]
        for e, g in zip(expected, r):
            assert torch.equal(e, g)


def test_default_is_the_best_available():
    assert qlstm.available_isas()[0] == "scalar"
    if "QLSTM_ISA" not in os.environ:
        assert qlstm.isa() == qlstm.available_isas()[-1]


def test_set_isa_rejects_unknown_and_unrunnable_sets():
    with pytest.raises(ValueError, match=r"qlstm: set_isa's name must name an instruction set.*'sse9'"):
        qlstm.set_isa("sse9")
    missing = [n for n in ALL_ISAS if n not in qlstm.available_isas()]
    if not missing:
        pytest.skip("this CPU runs every kernel set")
    with pytest.raises(ValueError, match=f"qlstm: .*'{missing[0]}', which this CPU cannot run"):
        qlstm.set_isa(missing[0])


def _import_with_env(value):
    env = dict(os.environ, QLSTM_ISA=value)
    return subprocess.run([sys.executable, "-c", "import qlstm; print(qlstm.isa())"],
                          env=env, capture_output=True, text=True, timeout=120)


def test_environment_variable_forces_a_set():
    done = _import_with_env("scalar")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "scalar"


def test_environment_variable_with_a_bad_name_fails_at_import():
    done = _import_with_env("fastest")
    assert done.returncode != 0
    assert "qlstm: the QLSTM_ISA environment variable must name an instruction set" in done.stderr


def test_peak_is_measured():
    assert qlstm.peak_macs_per_second(0.01) > 1e6

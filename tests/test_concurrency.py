"""One module and the ops called from many Python threads at once give the
results of serial calls: the kernels keep no shared mutable state."""
from concurrent.futures import ThreadPoolExecutor

import torch

import qlstm
from helpers import pack, random_bytes, random_model

THREADS = 8


def run_concurrently(fn, inputs):
    """fn over inputs on THREADS threads, all started together, each input several times."""
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(fn, inputs * 3))


def test_module_from_eight_threads_equals_serial():
    torch.manual_seed(0)
    model = torch.nn.LSTM(24, 40, 2, bidirectional=True).eval()
    quantized = qlstm.quantize(model, [torch.randn(10, 4, 24) for _ in range(2)])
    gen = torch.Generator().manual_seed(1)
    # Different lengths and batches, so that the threads' calls overlap in every phase.
    inputs = [torch.randn(5 + 3 * i, 1 + i % 4, 24, generator=gen) for i in range(THREADS)]
    serial = [quantized(x) for x in inputs]
    concurrent = run_concurrently(quantized, inputs)
    for i, (y, (h, c)) in enumerate(concurrent):
        ey, (eh, ec) = serial[i % THREADS]
        assert torch.equal(y, ey) and torch.equal(h, eh) and torch.equal(c, ec)


def test_ops_from_eight_threads_equal_serial():
    layers = random_model(16, 33, 1, False, True, True, seed=4, weight_zero_points=True)
    params = pack(layers[0])
    states = [(random_bytes(3, 16, seed=i), random_bytes(3, 33, seed=100 + i),
               random_bytes(3, 33, seed=200 + i)) for i in range(THREADS)]

    def step(s):
        return torch.ops.qlstm.quantized_lstm_cell(s[0], 0.05, 120, s[1], 0.02, 100, s[2], 0.03,
                                                   130, params)

    serial = [step(s) for s in states]
    for i, (h, c) in enumerate(run_concurrently(step, states)):
        assert torch.equal(h, serial[i % THREADS][0]) and torch.equal(c, serial[i % THREADS][1])

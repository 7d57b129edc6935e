"""TorchScript (script, trace, save/load in a fresh process, the libtorch runner)
and saved models across kernel sets."""
import os
import subprocess
import sys

import pytest
import torch

import qlstm
from helpers import (accurate_own_flow_model, assert_same, eager_flow_model, own_flow_model,
                     proj_own_flow_model, split_eager_flow_model, split_own_flow_model)

FLOWS = [own_flow_model, eager_flow_model, split_own_flow_model, split_eager_flow_model,
         proj_own_flow_model, accurate_own_flow_model]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


SHAPES = [(5, 2), (9, 3), (1, 1), (17, 4)]


@pytest.mark.parametrize("flow", FLOWS)
def test_script_matches_eager(flow):
    model = flow()
    scripted = torch.jit.script(model)
    for T, B in SHAPES:
        x = torch.randn(T, B, 6)
        assert_same(scripted(x), model(x))


def test_scripted_module_with_state_and_unbatched_input():
    model = own_flow_model()[0]
    scripted = torch.jit.script(model)
    x, state = torch.randn(4, 3, 6), (torch.randn(4, 3, 8), torch.randn(4, 3, 8))
    assert_same(scripted(x, state), model(x, state))
    x1 = torch.randn(4, 6)
    assert_same(scripted(x1), model(x1))
    with pytest.raises(torch.jit.Error, match="qlstm: input must be 2-d"):
        scripted(torch.randn(6))


@pytest.mark.parametrize("flow", FLOWS)
def test_trace_generalizes_to_other_lengths_and_batches(flow):
    model = flow()
    traced = to_jit(model, "trace", torch.randn(5, 2, 6))
    graph = str(traced.inlined_graph)
    # One op call for the whole sequence, not an unrolled loop of the traced length.
    assert graph.count("qlstm::quantized_lstm") == 1
    for T, B in SHAPES:
        x = torch.randn(T, B, 6)
        assert_same(traced(x), model(x))


def run_saved(kind, model_path, inputs, tmp_path, isa=None):
    """Runs a saved model in a fresh Python process (QLSTM_ISA=isa); returns its results."""
    inputs_path, outputs_path = tmp_path / "inputs.pt", tmp_path / f"outputs-{isa}.pt"
    torch.save(inputs, inputs_path)
    env = dict(os.environ)
    env.pop("QLSTM_ISA", None)
    if isa is not None:
        env["QLSTM_ISA"] = isa
    subprocess.run([sys.executable, os.path.join(HERE, "saved_model_runner.py"), kind,
                    str(model_path), str(inputs_path), str(outputs_path)],
                   check=True, env=env, capture_output=True, text=True, timeout=300)
    result = torch.load(outputs_path)
    assert result["isa"] == (isa or qlstm.available_isas()[-1])
    return result["outputs"]


def to_jit(model, how, example):
    if how == "script":
        return torch.jit.script(model)
    return torch.jit.trace(model, (example,), check_trace=False)


def assert_same_under_every_kernel_set(kind, path, model, x, tmp_path):
    expected = model(x)
    for isa in qlstm.available_isas():
        assert_same(run_saved(kind, path, (x,), tmp_path, isa), expected)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("how", ["script", "trace"])
def test_saved_model_is_bit_identical_in_a_fresh_process_under_every_kernel_set(flow, how, tmp_path):
    model = flow()
    path = tmp_path / "model.pt"
    with qlstm.use_isa("scalar"):  # saved while the reference kernels are in use
        torch.jit.save(to_jit(model, how, torch.randn(5, 2, 6)), path)
    assert_same_under_every_kernel_set("jit", path, model, torch.randn(11, 3, 6), tmp_path)


def test_exported_program_is_bit_identical_in_a_fresh_process_under_every_kernel_set(tmp_path):
    model = own_flow_model()
    T, B = torch.export.Dim("T", min=1, max=4096), torch.export.Dim("B", min=1, max=1024)
    path = tmp_path / "model.pt2"
    with qlstm.use_isa("scalar"):
        ep = torch.export.export(model, (torch.randn(5, 2, 6),),
                                 dynamic_shapes={"input": {0: T, 1: B}})
        torch.export.save(ep, path)
    assert_same_under_every_kernel_set("export", path, model, torch.randn(8, 4, 6), tmp_path)


def cpp_runner():
    """The libtorch runner: QLSTM_RUN names it (.ci/run sets it, and then it must
    exist), or the CMake build's default place."""
    path = os.environ.get("QLSTM_RUN")
    if path:
        assert os.path.exists(path), f"QLSTM_RUN names {path}, which does not exist"
        return path
    path = os.path.join(ROOT, "build", "cmake", "examples", "cpp", "qlstm_run")
    if not os.path.exists(path):
        pytest.skip(f"the libtorch runner is not built at {path}: see CMakeLists.txt")
    return path


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("split_gates,proj_size,mode",
                         [(False, 0, "torch"), (True, 0, "torch"), (False, 5, "torch"),
                          (False, 0, "accurate")])
def test_libtorch_runner_matches_python(how, split_gates, proj_size, mode, tmp_path):
    runner = cpp_runner()
    model = own_flow_model(batch_first=True, split_gates=split_gates, proj_size=proj_size,
                           mode=mode)
    to_jit(model, how, torch.randn(2, 5, 6)).save(str(tmp_path / "model.pt"))
    for threads in ("1", "2"):
        x = torch.randn(3, 13, 6)
        torch.save((x,), tmp_path / "inputs.pt")
        done = subprocess.run([runner, str(tmp_path / "model.pt"), str(tmp_path / "inputs.pt"),
                               str(tmp_path / "outputs.pt"), "--threads", threads],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert_same(torch.load(tmp_path / "outputs.pt"), model(x))


def test_libtorch_runner_reports_errors(tmp_path):
    runner = cpp_runner()
    done = subprocess.run([runner, str(tmp_path / "missing.pt"), "x", "y"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1 and "qlstm_run:" in done.stderr
    assert subprocess.run([runner], capture_output=True, timeout=60).returncode == 2

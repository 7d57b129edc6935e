"""Runs a saved model in a fresh process: ``python saved_model_runner.py KIND MODEL INPUTS OUTPUTS``.

KIND is ``jit`` (torch.jit.load) or ``export`` (torch.export.load); INPUTS holds
the forward arguments as a tuple (torch.save). OUTPUTS receives the results, with
quantized tensors as dicts of int_repr, scale and zero_point, and the kernel set used.
"""
import sys

import torch

import qlstm


def plain(value):
    if isinstance(value, torch.Tensor) and value.is_quantized:
        return {"int_repr": value.int_repr(), "scale": value.q_scale(),
                "zero_point": value.q_zero_point()}
    if isinstance(value, (tuple, list)):
        return tuple(plain(v) for v in value)
    return value


def main(kind, model_path, inputs_path, outputs_path):
    model = torch.jit.load(model_path) if kind == "jit" else torch.export.load(model_path).module()
    inputs = torch.load(inputs_path)
    with torch.no_grad():
        outputs = model(*inputs)
    torch.save({"outputs": plain(outputs), "isa": qlstm.isa()}, outputs_path)


if __name__ == "__main__":
    main(*sys.argv[1:])

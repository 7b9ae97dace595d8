"""Networks written as a layers list: the syntax, the shapes checked before anything runs, the same
numbers as the dense short form, and the lockstep, the walk, the proof and the trace through
any Sequential, running statistics included (a tiny module with a buffer stands in for a norm)."""
import json

import numpy as np
import pytest
import torch

from backprop_oracle import manual
from backprop_oracle.compare.cli import main
from backprop_oracle.compare.errors import SpecError
from backprop_oracle.compare.experiments.config import dump_config, parse_config
from backprop_oracle.compare.network.layers import LAYERS, LayerKind, dense_layers, parse_layer, split_layers
from backprop_oracle.compare.experiments.overrides import with_changes
from backprop_oracle.compare.experiments.presets import PRESETS, Preset
from backprop_oracle.compare.experiments.setup import prepare
from backprop_oracle.compare.experiments.spec import ExperimentSpec
from backprop_oracle.compare.lockstep.run import LockstepRun, run_lockstep
from backprop_oracle.compare.trace.example import format_trace, trace_example

# digits as 8x8 images through flatten: module 0 flatten, 1 linear, 2 tanh, 3 linear
IMAGE_NET = ExperimentSpec(dataset="digits", layers=("flatten", "linear(16)", "tanh", "linear(10)"),
                           input_shape=(1, 8, 8), loss="cross_entropy", optimizer="sgd", lr=0.5,
                           epochs=2, batch_size=64)
DENSE_DIGITS = "linear(16) sigmoid linear(16) sigmoid linear(10) sigmoid"


def cli(capsys, *args):
    code = main(["run", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_syntax_splits_outside_parentheses_and_reads_literals():
    assert split_layers("conv(8, 3, padding=1) relu,flatten  linear(10)") == \
        ["conv(8, 3, padding=1)", "relu", "flatten", "linear(10)"]
    layer = parse_layer("linear(10, bias=false)", 1)
    assert (layer.kind, layer.args, layer.kwargs) == ("linear", (10,), (("bias", False),))
    assert dense_layers((4, 3), "tanh", "sigmoid", 1) == ("linear(4)", "tanh", "linear(3)", "tanh", "linear(1)",
                                                          "sigmoid")
    with pytest.raises(SpecError, match=r"layer 2 'lnear\(3\)': unknown layer kind 'lnear'; choose one of: linear, "):
        ExperimentSpec(layers="relu lnear(3)").validate()
    with pytest.raises(SpecError, match=r"layer 1 'linear\(3' is not a layer"):
        parse_layer("linear(3", 1)
    with pytest.raises(SpecError, match="give one of them"):
        ExperimentSpec(layers="linear(1)", hidden_sizes=(3,)).validate()


def test_shapes_are_inferred_and_each_layer_gets_the_shape_flowing_in():
    p = prepare(IMAGE_NET)
    assert p.X.shape == (1438, 1, 8, 8) and p.X_val.shape[1:] == (1, 8, 8)
    assert p.network.shapes == ((1, 8, 8), (64,), (16,), (16,), (10,))
    model = p.network.manual()
    assert [n for n, _ in model.named_parameters()] == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert model[1].weight.shape == (16, 64)             # in_features from the shape flowing in


@pytest.mark.parametrize("layers,message", [
    ("flatten(start_dim=2) linear(32) relu flatten linear(10)",
     "layers: layer 2 'linear(32)' gets (N, 1, 64), but linear takes (N, features); put flatten before it"),
    ("flatten linear(32) relu linear(16) relu linear(8) tanh linear(4)",
     "layers: the network's output is (N, 4) (layer 8 'linear(4)') but the data has 10 output(s): end with "
     "linear(10)"),
    ("linear(32) relu linear(10)",
     "layers: layer 1 'linear(32)' gets (N, 1, 8, 8), but linear takes (N, features); put flatten before it"),
    ("flatten linear(32, True, 7) relu linear(10)",
     "layers: layer 2 'linear(32, True, 7)': linear takes linear(out_features, bias=True)"),
    ("flatten linear(32, size=4) relu linear(10)",
     "layers: layer 2 'linear(32, size=4)': linear takes linear(out_features, bias=True)"),
])
def test_a_layer_whose_input_does_not_fit_is_named_before_anything_runs(layers, message):
    with pytest.raises(SpecError) as e:
        LockstepRun(ExperimentSpec(dataset="digits", layers=layers, input_shape=(1, 8, 8), loss="cross_entropy"))
    assert str(e.value).startswith(message), str(e.value)


def test_the_command_line_refuses_a_shape_mistake_with_exit_2_and_writes_nothing(capsys, tmp_path):
    report = tmp_path / "r.json"
    code, out, err = cli(capsys, "--dataset", "digits", "--input-shape", "1,8,8", "--loss", "cross_entropy",
                         "--layers", "flatten linear(32) relu flatten(start_dim=2) linear(10)",
                         "--no-tensorboard", "--json", str(report))
    assert code == 2 and out == "" and not report.exists(), (code, out, err)
    assert err.count("\n") == 1, err
    assert "layer 4 'flatten(start_dim=2)' gets (N, 32), which it cannot take" in err, err
    code, _, err = cli(capsys, "digits", "--layers", DENSE_DIGITS, "--hidden", "16", "--no-tensorboard")
    assert code == 2 and "give one of them" in err, err
    code, _, err = cli(capsys, "--dataset", "digits", "--input-shape", "2,8,8", "--layers", "flatten linear(10)",
                       "--no-tensorboard")
    assert code == 2 and "input_shape [2, 8, 8] holds 128 numbers but each example of digits has 64" in err, err


def _numbers(result):
    d = result.to_dict()
    for key in ("spec", "seconds", "name"):
        d.pop(key, None)
    return d


def test_a_dense_net_as_a_layers_list_gives_the_same_numbers_as_hidden(capsys, tmp_path):
    spec = PRESETS["digits"].runs[""]
    layered = with_changes(spec, layers=DENSE_DIGITS, epochs=1)
    short = with_changes(spec, epochs=1)
    assert layered.hidden_sizes == () and short.hidden_sizes == (16, 16)
    a, b = run_lockstep(short, progress=False), run_lockstep(layered, progress=False)
    assert a.passed and b.passed
    assert _numbers(a) == _numbers(b)
    # and at the command line: the same table, the same JSON but for the spec
    tables, reports = [], []
    for i, network in enumerate((["--hidden", "16,16"], ["--layers", DENSE_DIGITS])):
        path = tmp_path / f"{i}.json"
        code, out, err = cli(capsys, "digits", *network, "--epochs", "1", "--no-tensorboard", "--quiet",
                             "--json", str(path))
        assert code == 0, err
        tables.append(out)
        reports.append(json.loads(path.read_text()))
    assert tables[0] == tables[1]
    for r in reports:
        for run in r.get("runs", [r]):
            for key in ("spec", "seconds"):
                run.pop(key, None)
        r.pop("seconds", None)
    assert reports[0] == reports[1]


def test_dump_config_then_config_keeps_the_layers(capsys, tmp_path):
    path = tmp_path / "net.toml"
    code, _, err = cli(capsys, "--dataset", "digits", "--input-shape", "1,8,8", "--loss", "cross_entropy",
                       "--layers", "flatten linear(16) tanh linear(10)", "--epochs", "2", "--dump-config", str(path))
    assert code == 0, err
    text = path.read_text()
    assert 'layers = ["flatten", "linear(16)", "tanh", "linear(10)"]' in text and "input_shape = [1, 8, 8]" in text
    spec = parse_config(text).runs[""]
    assert spec.layers == ("flatten", "linear(16)", "tanh", "linear(10)") and spec.input_shape == (1, 8, 8)
    assert parse_config(dump_config(Preset("net", "", {"": IMAGE_NET}, {}))).runs[""] == IMAGE_NET
    outs = [cli(capsys, *args, "--no-tensorboard", "--quiet")[1] for args in (
        ["--config", str(path)],
        ["--dataset", "digits", "--input-shape", "1,8,8", "--loss", "cross_entropy", "--layers",
         "flatten linear(16) tanh linear(10)", "--epochs", "2"])]
    assert outs[0] == outs[1] and "agree" in outs[0]
    with pytest.raises(SpecError, match=r"<config>:3: layers: layer 2 'lnear\(3\)': unknown layer kind"):
        parse_config('dataset = "digits"\n\nlayers = ["flatten", "lnear(3)"]\n')


def test_a_wrong_activation_derivative_is_found_at_its_node_in_a_layers_net(monkeypatch):
    monkeypatch.setattr(manual.Tanh, "backward", lambda self, g: g * (1 - self.a))     # 1 - a instead of 1 - a²
    result = run_lockstep(IMAGE_NET, progress=False)
    m = result.mismatch
    assert not result.passed and m.step == 1
    assert (m.node, m.node_module, m.module, m.layer) == ("activation_derivative", 2, 1, 1), m.describe()
    assert m.diff.name == "dL/dz_1 (gradient at module 1's output, linear)"
    assert m.proof.wrong and m.proof.where == "layer 1 (tanh, module 2)"


def test_a_wrong_backward_of_a_layer_without_parameters_is_found_at_that_module(monkeypatch):
    # flatten's dL/dx with the features in reverse order: the gradient at module 0's output is wrong
    monkeypatch.setattr(manual.Flatten, "backward", lambda self, g: g[:, ::-1].reshape(self.x_shape))
    spec = ExperimentSpec(dataset="digits", layers="linear(32) flatten linear(10)", loss="cross_entropy", epochs=1)
    m = run_lockstep(spec, progress=False).mismatch
    assert (m.node, m.node_module) == ("backward", 1), m.describe()
    assert m.diff.name == "dL/dz_1 (gradient at module 0's output, linear)"
    assert m.agreed[-1] == "dL/dy_1 (gradient at module 1's output, flatten)"
    assert m.proof.wrong and m.proof.where == "layer 1 (flatten, module 1)"


def test_trace_shows_every_node_of_a_layers_net():
    trace = trace_example(IMAGE_NET)
    symbols = [n.symbol for n in trace.nodes]
    assert symbols[:6] == ["x", "h₀", "z₁", "a₁", "z₂", "L"], symbols
    assert "∂L/∂z₁" in symbols and "∂a₁/∂z₁" in symbols and "∂L/∂W₁" in symbols and "W₂ →" in symbols
    assert "∂L/∂h₀" not in symbols          # before the first parameter: torch computes no gradient there
    assert trace.passed
    text = format_trace(trace)
    assert "x reshaped to (N, features)" in text and "every node agrees" in text


# ---- running statistics: a module with a buffer, as a norm layer will have -----------------------

class ManualRunningMean(manual.Module):
    """Training: y = x, running_mean <- (1 - m) running_mean + m mean(x); eval: y = x - running_mean."""

    def __init__(self, features, momentum=0.1, wrong=False):
        super().__init__()
        self.running_mean, self.momentum, self.wrong, self.training = np.zeros(features), momentum, wrong, True

    def named_buffers(self, prefix=""):
        yield prefix + "running_mean", self.running_mean

    def train(self, mode=True):
        self.training = mode
        return self

    def eval(self):
        return self.train(False)

    def forward(self, x):
        if not self.training:
            return x - self.running_mean
        m = self.momentum
        # the planted mistake: the weights of the old and the new statistic swapped
        old, new = (m, 1 - m) if self.wrong else (1 - m, m)
        self.running_mean[...] = old * self.running_mean + new * x.mean(axis=0)
        return x.copy()

    def backward(self, dL_dy):
        return dL_dy


class TorchRunningMean(torch.nn.Module):
    def __init__(self, features, momentum=0.1, dtype=torch.float64, device="cpu"):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(features, dtype=dtype, device=device))
        self.register_buffer("num_batches_tracked", torch.tensor(0))

    def forward(self, x):
        if not self.training:
            return x - self.running_mean
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * x.mean(dim=0))
            self.num_batches_tracked += 1
        return x.clone()


def _register(monkeypatch, wrong):
    monkeypatch.setitem(LAYERS, "runmean", LayerKind(
        lambda shape, momentum=0.1, *, dtype: ManualRunningMean(shape[0], momentum, wrong),
        lambda ref, shape, momentum=0.1, *, dtype, device: TorchRunningMean(shape[0], momentum, dtype, device),
        "inner", "(N, features)"))


RUNMEAN_NET = ExperimentSpec(dataset="moons", layers="linear(8) tanh runmean(0.3) linear(1) sigmoid", loss="bce",
                             epochs=3, batch_size=50, lr=0.5)


def test_running_statistics_are_compared_after_each_step_and_eval_mode_uses_them(monkeypatch):
    _register(monkeypatch, wrong=False)
    run = LockstepRun(RUNMEAN_NET)
    assert run.manual.buffer_names == run.torch.buffer_names == ["2.running_mean"]   # the count is not a statistic
    result = run.run()
    assert result.passed, result.mismatch and result.mismatch.describe()
    rm_m, rm_t = run.manual.buffers()["2.running_mean"], run.torch.buffers()["2.running_mean"]
    assert np.abs(rm_m).max() > 0.01 and np.abs(rm_m - rm_t).max() <= 1e-12
    # the final cost is evaluated in eval mode, with the running mean subtracted, on both sides
    X, Y = run.problem.X, run.problem.Y
    params = run.manual.params()
    h = np.tanh(X @ params["0.weight"].T + params["0.bias"]) - rm_m
    p = 1 / (1 + np.exp(-(h @ params["3.weight"].T + params["3.bias"])))
    bce = -np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p))
    assert abs(result.final_cost_manual - bce) <= 1e-12 and abs(result.final_cost_torch - bce) <= 1e-12
    assert run.manual.model[2].training and run.torch.model.training       # back in training mode


def test_a_wrong_running_statistics_rule_is_a_mismatch_of_its_own_node(monkeypatch):
    _register(monkeypatch, wrong=True)
    result = run_lockstep(RUNMEAN_NET, progress=False)
    m = result.mismatch
    assert not result.passed and m.step == 1, m
    assert (m.stage, m.node, m.node_module) == ("buffers", "running_stats", 2), m.describe()
    assert m.diff.name == "2.running_mean"
    assert m.proof.wrong and "the running statistics' update" in m.describe()


def test_trace_of_an_experiment_file_at_the_command_line(capsys, tmp_path):
    path = tmp_path / "net.toml"
    path.write_text(dump_config(Preset("net", "", {"img": IMAGE_NET}, {})))
    assert main(["trace", "--config", str(path), "img", "--example", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("net:img, example 3:") and "h₀       x reshaped to (N, features)" in out and "every node agrees" in out
    assert main(["trace", "--config", str(path), "other"]) == 2
    assert "has no run 'other'; its runs: 'img'" in capsys.readouterr().err


@pytest.mark.parametrize("start,end", [(1, -1), (2, 3), (0, 1), (-2, -1)])
def test_flatten_forward_and_backward_match_torch_autograd(start, end):
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.Flatten(start, end)(xt)
    layer = manual.Flatten(start, end)
    y = layer.forward(x)
    assert y.shape == tuple(yt.shape) and np.array_equal(y, yt.detach().numpy()), "forward"
    yt.backward(torch.tensor(g.reshape(yt.shape)))
    assert np.array_equal(layer.backward(g.reshape(y.shape)), xt.grad.numpy()), "dL/dx"
    with pytest.raises(ValueError, match=r"cannot flatten an input of shape \(2, 3, 4, 5\) \(dimensions 4\.\.-1 of 4\)"):
        manual.Flatten(4).forward(x)


# ---- layers lists beside registry keys with arguments ("elu:alpha=0.5") ----

def test_an_activation_key_with_arguments_is_a_layer_with_those_arguments():
    layer = parse_layer("softplus:beta=2,threshold=10", 3)
    assert (layer.kind, layer.args, layer.kwargs) == ("softplus", (), (("beta", 2), ("threshold", 10)))
    assert split_layers("linear(8) softplus:beta=2,threshold=10 linear(1)") == \
        ["linear(8)", "softplus:beta=2,threshold=10", "linear(1)"]
    with pytest.raises(SpecError, match=r"layer 2 'linear:out_features=3': only an activation is written "
                                        r"name:arguments"):
        ExperimentSpec(layers="relu linear:out_features=3").validate()
    # a bad argument is named with its layer before anything runs, as torch would refuse it
    with pytest.raises(SpecError, match=r"layers: layer 2 'elu:beta=1' gets \(N, 8\): the activation elu takes no "
                                        r"beta; it takes alpha"):
        prepare(ExperimentSpec(dataset="moons", layers="linear(8) elu:beta=1 linear(1) sigmoid", loss="bce"))


def test_a_key_with_arguments_gives_the_same_network_as_a_layer_with_arguments():
    # hidden_sizes with activation "elu:alpha=0.5" is written out as the same layers list
    short = ExperimentSpec(dataset="moons", hidden_sizes=(8,), activation="elu:alpha=0.5", loss="bce",
                           epochs=2, batch_size=50)
    keyed = with_changes(short, layers="linear(8) elu:alpha=0.5 linear(1) sigmoid")
    called = with_changes(short, layers="linear(8) elu(alpha=0.5) linear(1) sigmoid")
    assert prepare(short).network.manual()[1].alpha == 0.5
    results = [run_lockstep(s, progress=False) for s in (short, keyed, called)]
    assert all(r.passed for r in results)
    assert _numbers(results[0]) == _numbers(results[1]) == _numbers(results[2])


def test_the_loss_checks_read_the_key_name_and_the_list_s_last_activation():
    base = dict(dataset="digits", input_shape=(1, 8, 8))
    ExperimentSpec(layers="flatten linear(10)", loss="cross_entropy:label_smoothing=0.1", **base).validate()
    ExperimentSpec(layers="flatten linear(10) log_softmax", loss="nll", **base).validate()
    with pytest.raises(SpecError, match=r"cross_entropy applies softmax to logits itself; with output activation "
                                        r"'softmax' it would be applied twice. Use output activation 'identity' "
                                        r"\(with layers: end the list with it"):
        ExperimentSpec(layers="flatten linear(10) softmax", loss="cross_entropy:label_smoothing=0.1", **base).validate()
    with pytest.raises(SpecError, match=r"nll takes log-probabilities; output activation 'identity'"):
        ExperimentSpec(layers="flatten linear(10)", loss="nll", **base).validate()
    with pytest.raises(SpecError, match=r"hinge .* 'softplus' never goes below 0"):
        ExperimentSpec(dataset="moons", layers="linear(4) softplus:beta=2", loss="hinge").validate()
    # and the weight of a loss key is checked against the list's outputs
    with pytest.raises(SpecError, match=r"weight holds 3 number\(s\) but the network has 10 output\(s\)"):
        prepare(ExperimentSpec(layers="flatten linear(10)", loss="cross_entropy:weight=1,2,3", **base))

"""backprop-oracle list --keys: every key of every registry with the torch name it stands for, read
from the registries, so that a key registered on both sides is listed without further code."""
import torch

from backprop_oracle import manual, torch_ref
from backprop_oracle.compare.cli import main
from backprop_oracle.compare.keys.listing import REGISTRIES, registry_rows


def test_every_key_of_every_registry_is_listed_with_its_torch_name(capsys):
    assert main(["list", "--keys"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    for _, registry, _ in REGISTRIES:
        for key in getattr(manual, registry):
            assert key in lines, f"{registry}: key {key!r} not listed:\n{out}"
    assert "torch.nn.GELU" in lines["gelu"] and "approximate='none'" in lines["gelu"]
    assert "torch.nn.Softplus" in lines["softplus"] and "beta=1.0, threshold=20.0" in lines["softplus"]
    assert "torch.nn.CrossEntropyLoss" in lines["cross_entropy"] and "label_smoothing=0.0" in lines["cross_entropy"]
    assert "torch.nn.BCEWithLogitsLoss" in lines["bce_with_logits"] and "torch.nn.HuberLoss" in lines["huber"]
    assert "torch.optim.Adam" in lines["adam"] and "torch.optim.lr_scheduler.StepLR" in lines["step"]
    assert "torch.optim.lr_scheduler.LambdaLR" in lines["constant"]
    assert "torch.nn.init.xavier_uniform_" in lines["xavier_uniform"]
    assert "written in torch_ref.losses" in lines["hinge"]


def test_a_key_registered_on_both_sides_is_listed_by_itself(monkeypatch):
    class Mish(manual.Module):
        def __init__(self, beta=1.0):
            super().__init__()
    monkeypatch.setitem(manual.ACTIVATIONS, "mish", Mish)
    monkeypatch.setitem(torch_ref.ACTIVATIONS, "mish", torch.nn.Mish)

    def lr_warm(optimizer, warmup=3):
        return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, total_iters=warmup)
    monkeypatch.setitem(manual.SCHEDULERS, "warm", lambda optimizer, warmup=3: None)
    monkeypatch.setitem(torch_ref.SCHEDULERS, "warm", lr_warm)
    rows = dict(registry_rows())
    assert ("mish", "torch.nn.Mish", "beta=1.0") in rows["activations"]
    assert ("warm", "torch.optim.lr_scheduler.LinearLR", "warmup=3") in rows["schedules"]


def test_the_layer_kinds_are_listed_with_the_torch_class_each_side_builds(capsys):
    from backprop_oracle.compare.network.layers import LAYERS
    assert main(["list", "--keys"]) == 0
    out = capsys.readouterr().out
    section = out.split("layers (")[1]
    lines = {line.split()[0]: line for line in section.splitlines() if line.startswith("  ") and line.split()}
    assert "conv(out_channels, kernel_size, stride=1, padding=0" in lines["conv"] and "(N, C, H, W)" in lines["conv"]
    assert "torch.nn.Dropout" in lines["dropout"] and "dropout(p=0.5)" in lines["dropout"]
    # the class written beside each kind is the one its torch builder makes
    shapes = {"(N, features)": (6,), "(N, C, H, W)": (2, 6, 6), "(N, C, L)": (2, 6), "any shape": (2, 6, 6),
              "(N, C), (N, C, L) or (N, C, H, W)": (2, 6, 6)}
    needs = {"linear": (3,), "conv": (3, 3), "conv1d": (3, 3), "maxpool": (2,), "avgpool": (2,)}
    for kind, entry in LAYERS.items():
        if entry.role == "activation":
            continue
        module = entry.torch(torch_ref, shapes[entry.takes], *needs.get(kind, ()), dtype=torch.float64, device="cpu")
        name = f"torch.nn.{type(module).__name__}"       # torch_ref.Dropout is torch.nn.Dropout with a mask provider
        assert isinstance(module, getattr(torch.nn, type(module).__name__)), name
        assert name in entry.stands_for and kind in lines, (kind, name, entry.stands_for)

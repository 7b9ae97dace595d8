"""The house rules that keep the two sides honest: one-way imports and mirror-image registries."""
import ast
import pathlib
import subprocess
import sys

import manual
import torch_ref

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_import_manual_does_not_import_torch():
    code = "import sys, manual; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"import manual pulled in torch: {proc.stderr}"


def imported_modules(package):
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {(path.name, a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add((path.name, node.module.split(".")[0]))
    return names


def test_one_way_imports():
    manual_bad = {(f, m) for f, m in imported_modules("manual") if m in ("torch", "torch_ref", "compare")}
    torch_bad = {(f, m) for f, m in imported_modules("torch_ref") if m in ("manual", "compare")}
    assert not manual_bad, f"manual/ must import NumPy only, found {sorted(manual_bad)}"
    assert not torch_bad, f"torch_ref/ must not import manual/ or compare/, found {sorted(torch_bad)}"


def test_registries_mirror_each_other():
    for registry in ("ACTIVATIONS", "LOSSES", "OPTIMIZERS", "SCHEDULERS", "INITIALISERS", "DTYPES"):
        m, t = getattr(manual, registry), getattr(torch_ref, registry)
        assert list(m) == list(t), f"{registry}: manual has {list(m)}, torch_ref has {list(t)}"


def test_file_names_mirror_each_other():
    m = {p.name for p in (ROOT / "manual").glob("*.py")}
    t = {p.name for p in (ROOT / "torch_ref").glob("*.py")}
    # manual/ needs a Module base class that torch provides itself; torch_ref/ needs a device choice.
    assert m - {"module.py"} == t - {"device.py"}, f"only in manual: {sorted(m - t)}, only in torch_ref: {sorted(t - m)}"

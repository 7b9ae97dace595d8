"""The house rules that keep the two sides honest: one-way imports and mirror-image registries."""
import ast
import pathlib
import subprocess
import sys

from backprop_oracle import manual
from backprop_oracle import torch_ref

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_import_manual_does_not_import_torch():
    code = "import sys, backprop_oracle.manual; assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)[:5]"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"import manual pulled in torch: {proc.stderr}"


def imported_names(node):
    """The dotted names an import statement loads, with the package's own prefix taken off:
    ``from backprop_oracle import manual`` and ``import backprop_oracle.manual`` are both "manual"."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    else:
        return []
    out = []
    for name in names:
        if name == "backprop_oracle":
            continue
        out.append(name.removeprefix("backprop_oracle."))
    return out


def imported_modules(package):
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names |= {(path.name, n.split(".")[0]) for n in imported_names(node)}
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
    # manual/ needs a Module base class that torch provides itself; torch_ref/ needs a device choice
    # and, for a GPU, its training step replayed from CUDA graphs.
    assert m - {"module.py"} == t - {"device.py", "graphs.py"}, f"only in manual: {sorted(m - t)}, only in torch_ref: {sorted(t - m)}"


# The rooms of compare/ and the rooms each may import (besides itself). Arrows run one way, from
# the command line at the top down to the shared errors and tables; see compare/__init__.py.
ROOMS = {
    "errors": set(),
    "tables": set(),
    "files": {"errors"},
    "data": {"errors", "files"},
    "verdict": {"errors"},
    "flat": set(),
    "network": {"errors"},
    "arguments": {"errors", "network"},
    "experiments": {"errors", "data", "network"},
    "interactive": set(),
    "layouts": {"errors"},
    "sides": {"errors", "experiments", "network", "flat", "verdict"},
    "lockstep": {"errors", "tables", "files", "data", "verdict", "experiments", "network", "flat", "interactive", "sides"},
    "updates": {"errors", "tables", "files", "verdict", "interactive"},
    "check": {"errors", "tables", "files", "data", "verdict", "experiments", "flat", "lockstep", "updates", "layouts",
              "interactive", "sides"},
    "train": {"errors", "tables", "files", "data", "verdict", "experiments", "flat", "lockstep", "interactive", "sides"},
    "checkpoints": {"errors", "files", "data", "experiments", "network", "flat", "lockstep", "sides"},
    "trace": {"errors", "tables", "data", "verdict", "experiments", "lockstep"},
    "keys": {"tables", "network"},
    "dashboards": {"errors", "tables", "files", "data", "verdict", "experiments", "flat", "lockstep", "interactive",
                   "sides"},
    "bench": {"errors", "tables", "files", "data", "verdict", "experiments", "network", "flat", "lockstep", "check"},
    "spread": {"errors", "files", "train", "dashboards"},
    "cli": {"errors", "tables", "files", "data", "verdict", "experiments", "network", "flat", "lockstep", "train",
            "check", "dashboards", "updates", "layouts", "bench", "checkpoints", "trace", "keys",
            "interactive", "spread", "arguments", "sides"},
}
PUBLIC_FACE = {"__init__.py"}
SHARED = {"errors", "tables", "files"}      # modules at compare/'s top that every room may use


def room_of(path):
    rel = path.relative_to(ROOT / "compare")
    return rel.parts[0].removesuffix(".py")


def room_imports():
    """{(importing file, imported room)} for every import of compare.X inside compare/."""
    found = set()
    for path in (ROOT / "compare").rglob("*.py"):
        if path.parent == ROOT / "compare" and path.name in PUBLIC_FACE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            for name in imported_names(node):
                parts = name.split(".")
                if parts[0] == "compare" and len(parts) > 1:
                    found.add((path, parts[1]))
    return found


def test_compare_top_holds_only_the_public_face_and_shared_modules():
    top = {p.name for p in (ROOT / "compare").glob("*.py")}
    rooms = {p.name for p in (ROOT / "compare").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert top == PUBLIC_FACE | {f"{m}.py" for m in SHARED}, f"modules at the top of compare/: {sorted(top)}"
    assert rooms | SHARED == set(ROOMS), f"rooms: {sorted(rooms)}, expected {sorted(ROOMS)}"


def test_rooms_import_one_way():
    wrong = sorted(f"{p.relative_to(ROOT)} imports compare.{room} (compare/{room_of(p)} may import only "
                   f"{sorted(ROOMS[room_of(p)]) or 'nothing of compare'})"
                   for p, room in room_imports() if room != room_of(p) and room not in ROOMS[room_of(p)])
    assert not wrong, "arrows that run the wrong way:\n" + "\n".join(wrong)


def test_room_map_has_no_circle():
    # The allowed arrows themselves must form no circle, or the test above would permit one.
    seen, done = set(), set()

    def visit(room, path):
        assert room not in seen - done, f"circle: {' -> '.join(path + [room])}"
        if room in done:
            return
        seen.add(room)
        for nxt in ROOMS[room]:
            visit(nxt, path + [room])
        done.add(room)

    for room in ROOMS:
        visit(room, [])


def test_each_room_says_what_it_is_for_and_stays_small():
    for room in set(ROOMS) - SHARED:
        init = ROOT / "compare" / room / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc.lower(), f"compare/{room}/__init__.py needs a docstring saying what it is for and may import"
        lines = sum(len(p.read_text().splitlines()) for p in (ROOT / "compare" / room).rglob("*.py"))
        assert lines <= 1500, f"compare/{room} has {lines} lines; split it into rooms of one concern each"


def test_the_room_test_catches_a_wrong_arrow(tmp_path, monkeypatch):
    # A data module importing the lockstep run must be reported: the test above can fail.
    fake = tmp_path / "compare" / "data"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from backprop_oracle.compare.lockstep.run import LockstepRun\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {(fake / "bad.py", "lockstep")} == room_imports()
    assert "lockstep" not in ROOMS[room_of(fake / "bad.py")]


def test_every_package_is_installed_under_its_distinctive_name():
    import tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {str(p.parent.relative_to(ROOT)) for part in ("backprop_oracle", "manual", "torch_ref", "compare")
               for p in (ROOT / part).rglob("__init__.py")}
    expected = {"backprop_oracle" + ("" if f == "backprop_oracle" else "." + f.replace("/", ".")) for f in folders}
    assert set(config["packages"]) == expected, (
        f"pyproject.toml's packages: missing {sorted(expected - set(config['packages']))}, "
        f"extra {sorted(set(config['packages']) - expected)}")


def test_no_module_imports_a_bare_top_level_name():
    # "import manual" would pick up a user's own manual.py; every import goes through backprop_oracle.
    bare = []
    for part in ("backprop_oracle", "manual", "torch_ref", "compare", "tests", "examples", "benchmarks"):
        for path in (ROOT / part).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                bare += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("manual", "torch_ref", "compare")]
    assert not bare, "imports of a bare top-level name:\n" + "\n".join(bare)

"""examples/tutorial.ipynb runs from top to bottom in a real Jupyter kernel, and what a reader sees
there is what the tutorial promises: the worked example's numbers, a red MISMATCH badge with the
wrong row and its reason, a lockstep run that agrees, its picture, and progress that does not flood."""
import json
import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "examples" / "tutorial.ipynb"


def test_the_tutorial_is_stored_without_outputs():
    nb = json.loads(TUTORIAL.read_text())
    stored = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not stored, f"cells {stored} of examples/tutorial.ipynb hold outputs; clear them before committing"
    first = "".join(nb["cells"][0]["source"])
    assert "Colab" in first and "pip install" in first, "the first cell says how to install in Colab"


@pytest.fixture(scope="module")
def executed():
    nb = nbformat.read(TUTORIAL, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    return nb


def cell(nb, text):
    found = [c for c in nb.cells if c.cell_type == "code" and text in c.source]
    assert len(found) == 1, f"one code cell holds {text!r}"
    return found[0]


def html_of(c):
    return "".join(o["data"].get("text/html", "") for o in c.outputs if o["output_type"] == "execute_result")


def test_the_worked_example_prints_the_articles_numbers(executed):
    out = "".join(o.get("text", "") for o in cell(executed, "y_hat = mine.forward(X)").outputs)
    assert "ŷ manual: [0.5" in out and "ŷ torch:  [0.5" in out
    assert "loss of the first example: 0.125" in "".join(o.get("text", "") for o in cell(executed, "first =").outputs)


def test_the_planted_mistake_shows_a_red_badge_the_wrong_row_and_the_reason(executed):
    html = html_of(cell(executed, "wrong = check_function("))
    assert "MISMATCH" in html and "background:#cf222e" in html
    rows = re.findall(r'<tr style="color:#cf222e[^"]*">(.*?)</tr>', html)
    assert len(rows) == 1 and "dL/dz" in rows[0] and "WRONG" in rows[0]
    assert "first wrong (trial" in html and "the derivative itself" in html
    right = html_of(cell(executed, "check_function(sigmoid, sigmoid_backward, torch.sigmoid"))
    assert "PASSED" in right and "background:#1a7f37" in right
    network = html_of(cell(executed, "check_network(backprop"))
    assert "activation derivative of layer 1" in network and "MISMATCH" in network


def test_the_lockstep_run_shows_its_verdict_picture_and_no_flood_of_progress(executed):
    c = cell(executed, "result = run_lockstep(")
    html = html_of(c)
    assert ">agree<" in html and "or-gate" in html and "<svg" in html
    streams = [o for o in c.outputs if o["output_type"] == "stream"]
    assert len(streams) <= 1 and not any("\r" in o["text"] for o in streams), streams
    assert len(c.outputs) <= 3, [o["output_type"] for o in c.outputs]
    picture = cell(executed, "result.plot()")
    assert any("image/png" in o.get("data", {}) for o in picture.outputs)
    assert "1 of 1 run(s) agree" in "".join(o.get("text", "") for o in cell(executed, "print(result.report())").outputs)

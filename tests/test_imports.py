"""A package that imports fast: ``import ntklab`` (and the command line) load no heavy library;
the public names still resolve, on first use."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import ntklab
import ntklab.execution
import ntklab.report

HEAVY = ("matplotlib", "pandas", "sklearn", "torch", "scipy", "numba", "rich", "dask")


def _loaded_after(code: str) -> list[str]:
    """The HEAVY top-level packages in ``sys.modules`` after running ``code`` in a fresh
    interpreter (the test environment's, so the same ntklab)."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_ntklab_loads_no_heavy_library():
    assert _loaded_after("import ntklab, ntklab.report") == []


def test_the_command_line_loads_no_heavy_library():
    # and the pool's fork server starts before anything heavy is imported (ntklab run)
    assert _loaded_after("import ntklab.cli, ntklab.execution.forkserver") == []


@pytest.mark.parametrize(
    ("code", "allowed"),
    [
        ("import ntklab.predict", {"scipy"}),  # KernelRegressor is imported on first use
        ("import ntklab.data", {"scipy"}),
        # the kernel modules load without numba: it is imported to compute a kernel
        ("import ntklab; ntklab.Architecture(1).ntk", {"torch", "scipy"}),
        ("import ntklab; ntklab.KernelRegressor", {"sklearn", "scipy", "pandas"}),  # sklearn's own
    ],
)
def test_modules_load_only_what_they_need(code, allowed):
    loaded = set(_loaded_after(code))
    assert loaded <= allowed, loaded - allowed


def test_public_names_resolve():
    for name in ntklab.__all__:
        assert getattr(ntklab, name) is not None, name
    for name in ntklab.report.__all__:
        assert getattr(ntklab.report, name) is not None, name
    assert set(ntklab.__all__) <= set(dir(ntklab))
    assert ntklab.KernelRegressor is ntklab.predict.KernelRegressor
    assert ntklab.data.gp_sample is not None and ntklab.report.tables.Run is ntklab.report.Run
    for name in ntklab.execution.__all__:
        assert getattr(ntklab.execution, name) is not None, name
    from ntklab.predict import KernelRegressor  # the old import path still works

    assert KernelRegressor is ntklab.regressor.KernelRegressor
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = ntklab.nonexistent
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = ntklab.report.nonexistent
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        _ = ntklab.predict.nonexistent


def test_the_stub_is_the_one_table_of_public_names(tmp_path):
    """A package's ``__init__.pyi`` gives ``__all__``, the lazy names and the submodules;
    a line it cannot read is refused with the line named."""
    from ntklab._lazy import read_stub

    stub = tmp_path / "__init__.pyi"
    stub.write_text(
        '"""doc"""\nfrom . import data as data\nfrom . import cli\n'
        "from .kernels import rbf as rbf\n__version__: str\n"
    )
    names, submodules, public = read_stub(str(stub))
    assert (names, submodules, public) == (
        {"rbf": "kernels"},
        {"data", "cli"},
        ["data", "rbf", "__version__"],
    )
    assert "verify" in dir(ntklab) and "verify" not in ntklab.__all__  # reachable, not public
    for bad in ("from .kernels import rbf as laplace\n", "import os\n"):
        stub.write_text(bad)
        with pytest.raises(ValueError, match="__init__.pyi"):
            read_stub(str(stub))

"""Kernel variants named as "module:function": imported on first use, errors that name the kernel."""
import inspect
import pickle
import subprocess
import sys

import pytest

import eqflow as eq
from eqflow.system import LazyFunction


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "lazy_kernel_probe.py").write_text("def fast(*, x, rate):\n    return {'x': x * rate}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazy_kernel_probe"
    sys.modules.pop("lazy_kernel_probe", None)


def test_a_named_kernel_is_imported_on_first_use(plugin_module):
    kernel = eq.Kernel(f"{plugin_module}:fast")
    assert plugin_module not in sys.modules
    assert str(inspect.signature(kernel.update)) == "(*, x, rate)" and plugin_module in sys.modules
    assert kernel.update(x=2.0, rate=3.0) == {"x": 6.0}
    assert kernel.update.__name__ == "fast" and kernel.update.__module__ == plugin_module
    assert pickle.loads(pickle.dumps(kernel)) == kernel


@pytest.mark.parametrize("bad", ["no_colon", "mod:", ":fn", "mod:1fn", "a b:c"])
def test_a_malformed_name_is_refused_at_once(bad):
    with pytest.raises(ValueError, match=r"update: expected a callable or a 'module:function' name, got " + repr(bad)):
        eq.Kernel(bad)


def test_not_callable_is_refused():
    with pytest.raises(TypeError, match="update: expected a callable or a 'module:function' name, got int"):
        eq.Kernel(3)


def test_a_missing_function_is_named_when_used(plugin_module):
    with pytest.raises(AttributeError, match=f"kernel '{plugin_module}:slow': {plugin_module} has no attribute 'slow'"):
        LazyFunction(f"{plugin_module}:slow").resolve()


def test_ising_kernels_load_nothing_until_they_run():
    code = ("import sys, eqflow as eq\n"
            "ops = eq.get_system('ising').operators\n"
            "names = {k.update.target for op in ops.values() for k in op.kernels.values()}\n"
            "print(sorted(names), 'numba' in sys.modules, 'triton' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert "'eqflow.systems.ising.kernels:metropolis'" in out and "'eqflow.systems.ising.gpu:heat_bath'" in out
    assert out.strip().endswith("False False")

"""SciPy is imported when an analysis first computes, not when the CLI or the app starts
(corridor.lazy): every CLI command imports every analysis module, and SciPy's stats alone took
0.8 s of the CLI's 2.0 s of imports."""

from __future__ import annotations

import subprocess
import sys
import threading

from corridor.lazy import LazyModule

STARTUP = """
import sys
import corridor.cli.main, corridor.api.app, corridor.sdk
from corridor.analytics.core import registry
assert len(registry.analyses()) > 20
print(sorted(m for m in sys.modules if m == "scipy" or m.startswith("scipy.")))
"""


def test_the_cli_and_the_app_start_without_scipy():
    done = subprocess.run(
        [sys.executable, "-c", STARTUP], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", (
        f"imported on start: {done.stdout.strip()}; import SciPy in a module the CLI loads as "
        '`stats = lazy("scipy.stats")` (corridor.lazy), not `from scipy import stats`'
    )


def test_an_analysis_imports_scipy_when_it_computes():
    code = (
        "import sys\n"
        "from corridor.analytics.estimators.stats import welch_t_test\n"
        "assert 'scipy.stats' not in sys.modules\n"
        "r = welch_t_test(5.0, 1.0, 30, 4.0, 1.5, 40)\n"
        "print('scipy.stats' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


def test_a_lazy_module_is_the_module_once_read_from_many_threads():
    """Eight threads read an attribute of a module not imported yet at the same moment: each
    gets the real attribute (importlib's locks, not importlib.util.LazyLoader, which is not
    thread-safe before Python 3.12)."""
    name = "xml.dom.minidom"
    sys.modules.pop(name, None)
    module = LazyModule(name)
    assert "not imported yet" in repr(module)
    start = threading.Barrier(8)
    got: list[object] = []

    def read() -> None:
        start.wait()
        got.append(module.parseString)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import xml.dom.minidom

    assert got == [xml.dom.minidom.parseString] * 8
    assert "(imported)" in repr(module)

"""fastboot: modules served from the boot bundle are the files' modules, only loaded faster;
lazy ones load whole, once, whichever threads touch them first; a bad bundle is ignored.

Each case runs in a Python process of its own, so that its imports really happen."""

from __future__ import annotations

import marshal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parents[2] / "sandbox-image" / "agent"


def python(code: str, cwd: Path) -> str:
    """Run code in a fresh interpreter that can import localbox_agent; its stdout."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={"PYTHONPATH": f"{AGENT}:{cwd}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    """A folder of modules to bundle: a package, a plain module and a slow one."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from pkg.part import VALUE\n")
    (tmp_path / "pkg" / "part.py").write_text("VALUE = 42\n\ndef where():\n    return 'part'\n")
    (tmp_path / "plain.py").write_text("def double(x):\n    return 2 * x\n")
    (tmp_path / "slow.py").write_text("import time\ntime.sleep(0.3)\nDONE = True\n")
    python("import compileall, sys; compileall.compile_dir('.', quiet=1)", tmp_path)
    return tmp_path


def bundle_of(lib: Path, *modules: str) -> Path:
    path = lib / "test.bundle"
    count = python(
        f"""
        import sys
        from localbox_agent import fastboot
        import {", ".join(modules)}
        print(fastboot.write_bundle({str(path)!r}, dict(sys.modules), {str(lib)!r}))
        """,
        lib,
    )
    assert int(count) >= len(modules)
    return path


def test_bundled_modules_are_the_files_modules(lib: Path) -> None:
    bundle = bundle_of(lib, "pkg", "plain")
    out = python(
        f"""
        import inspect, sys
        from localbox_agent import fastboot
        finder = fastboot.install({str(bundle)!r}, lazy=frozenset())
        import pkg, plain
        from pkg import part
        print(type(plain.__loader__).__name__, type(part.__loader__).__name__)
        print(plain.__file__ == {str(lib / "plain.py")!r}, pkg.__path__ == [{str(lib / "pkg")!r}])
        print(pkg.VALUE, plain.double(4), part.where())
        print(inspect.getsource(plain.double).splitlines()[0])
        fastboot.boot_finished(finder)
        print(finder in sys.meta_path)
        """,
        lib,
    )
    assert out.splitlines() == [
        "_BundleLoader _BundleLoader",
        "True True",
        "42 8 part",
        "def double(x):",
        "False",
    ]


def test_a_bundle_of_another_python_or_none_at_all_is_ignored(lib: Path) -> None:
    # A bundle whose code another Python version wrote (a different magic number).
    header = marshal.dumps((b"\0\0\r\n", 1, {"plain": (str(lib / "plain.py"), False, 0, 0)}))
    stale = lib / "stale.bundle"
    stale.write_bytes(len(header).to_bytes(8, "little") + header)
    out = python(
        f"""
        from localbox_agent import fastboot
        print(fastboot.install({str(stale)!r}), fastboot.install({str(lib / "none")!r}))
        import plain
        print(type(plain.__loader__).__name__, plain.double(2))
        """,
        lib,
    )
    assert out.splitlines() == ["None None", "SourceFileLoader 4"]


def test_a_lazy_module_loads_once_whole_for_threads_that_touch_it_together(lib: Path) -> None:
    bundle = bundle_of(lib, "slow")
    out = python(
        f"""
        import sys, threading, time
        from localbox_agent import fastboot
        fastboot.install({str(bundle)!r}, lazy=frozenset({{"slow"}}))
        started = time.monotonic()
        import slow
        print(type(slow).__name__, time.monotonic() - started < 0.2)  # not run yet
        seen, barrier = [], threading.Barrier(8)
        def touch():
            barrier.wait()
            try:
                seen.append(slow.DONE)
            except AttributeError as exc:  # what a half-loaded module gives
                seen.append(repr(exc))
        threads = [threading.Thread(target=touch) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(seen, type(slow).__name__, sys.modules["slow"] is slow)
        """,
        lib,
    )
    assert out.splitlines() == [
        "_LazyModule True",
        f"{[True] * 8} module True",
    ]


def test_load_lazy_loads_what_is_left_and_makes_no_more_lazy(lib: Path) -> None:
    bundle = bundle_of(lib, "plain", "slow")
    out = python(
        f"""
        from localbox_agent import fastboot
        finder = fastboot.install({str(bundle)!r}, lazy=frozenset({{"plain", "slow"}}))
        import plain
        print(type(plain).__name__)
        fastboot.load_lazy(finder)
        print(type(plain).__name__, "DONE" in plain.__dict__ or plain.double(3))
        import slow  # imported after: loaded at once
        print(type(slow).__name__, type(slow.__loader__).__name__)
        """,
        lib,
    )
    assert out.splitlines() == ["_LazyModule", "module 6", "module _BundleLoader"]

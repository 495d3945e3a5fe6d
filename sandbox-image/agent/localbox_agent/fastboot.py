"""What makes the interpreter's start cheap: the compiled modules its boot imports, read from
one file (the boot bundle, made when the image is built), and a few of them left to load
when they are first used.

A normal import looks for each module along sys.path (a stat per directory), then opens,
reads and checks its .pyc: for the ~300 modules IPython's core brings, that is about a tenth
of the interpreter's start. The bundle holds those modules' code, read in one go. Its
modules are the same as the files' (same __file__, __spec__, source for tracebacks); only
their loader reads the code from the bundle. It serves nothing but the names it holds, and
only during the boot: boot_finished() takes it off sys.meta_path.

Self-contained (standard library only): the interpreter loads it by path, before anything
else, and nothing of the agent joins its import path.

  python3 -m localbox_agent.fastboot BUNDLE   (at image build) records the interpreter's
  boot (the shell made, a first call, the magics) and writes the bundle.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import marshal
import mmap
import os
import sys
import types

BUNDLE = "/opt/localbox/interpreter.bundle"
# Modules IPython's core imports but does not use until much later (if ever): loaded when
# first touched instead. Only plain modules that nothing in the boot reads from: a module
# that the boot touches loads there and then, which is merely slower, never wrong.
LAZY = frozenset(
    {
        "asyncio", "asyncio.format_helpers", "asyncio.sslproto", "asyncio.staggered",
        "asyncio.trsock", "base64", "bz2", "code", "dataclasses", "ipaddress",
        "logging.handlers", "lzma", "mimetypes", "pickle", "pydoc", "runpy", "shlex", "sqlite3",
        "ssl", "stack_data", "uuid",
    }
)  # fmt: skip
_FORMAT = 1


class _BundleLoader(importlib.machinery.SourceFileLoader):
    """A source file's loader whose code comes from the bundle."""

    def __init__(self, fullname: str, path: str, code: memoryview) -> None:
        super().__init__(fullname, path)
        self._code: memoryview | None = code

    def get_code(self, fullname: str) -> types.CodeType:
        code, self._code = self._code, None  # loaded once; a reload reads the file
        loaded = marshal.loads(code) if code is not None else None
        if not isinstance(loaded, types.CodeType):
            return super().get_code(fullname)  # type: ignore[return-value]
        return loaded


class BundleFinder:
    """Finds the bundle's modules (and makes the LAZY ones lazy) while the boot lasts."""

    def __init__(
        self, index: dict[str, tuple[str, bool, int, int]], data: memoryview, lazy: frozenset[str]
    ) -> None:
        self._index = index
        self._data = data
        self._lazy = lazy
        self.made_lazy: list[str] = []

    def find_spec(
        self, name: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        entry = self._index.pop(name, None)
        if entry is None:
            return None
        origin, package, offset, size = entry
        loader: importlib.abc.Loader = _BundleLoader(
            name, origin, self._data[offset : offset + size]
        )
        if name in self._lazy:
            loader = _LazyLoader(loader)
            self.made_lazy.append(name)
        return importlib.util.spec_from_file_location(
            name,
            origin,
            loader=loader,
            submodule_search_locations=[os.path.dirname(origin)] if package else None,
        )


def install(path: str = BUNDLE, lazy: frozenset[str] = LAZY) -> BundleFinder | None:
    """Serve the bundle's modules from now on; None when there is no usable bundle (the
    modules then load as usual). The file is mapped, not read: a module's code is
    unmarshalled from its pages when it is imported."""
    try:
        with open(path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        size = int.from_bytes(data[:8], "little")
        magic, version, index = marshal.loads(data[8 : 8 + size])
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if magic != importlib.util.MAGIC_NUMBER or version != _FORMAT or not isinstance(index, dict):
        return None
    finder = BundleFinder(index, memoryview(data)[8 + size :], lazy)
    sys.meta_path.insert(0, finder)  # type: ignore[arg-type]
    return finder


def load_lazy(finder: BundleFinder | None) -> None:
    """Load, in this thread and now, the modules the bundle made lazy that nothing has
    touched yet, and make no more lazy. The interpreter does this between its first calls,
    so that its background work (the magics) never loads one while the user's code runs."""
    if finder is None:
        return
    finder._lazy = frozenset()
    for name in finder.made_lazy:
        module = sys.modules.get(name)
        if isinstance(module, _LazyModule):
            # Reading any attribute loads it. One that fails to load fails as an eager import
            # would have; the user's own touch raises it again.
            with contextlib.suppress(Exception):
                vars(module)


def boot_finished(finder: BundleFinder | None) -> None:
    """Imports from now on go the usual way."""
    if finder is not None and finder in sys.meta_path:
        sys.meta_path.remove(finder)  # type: ignore[arg-type]


# ------------------------------------------------------------------ lazy modules
# The standard LazyLoader of Python 3.11 lets a second thread see a lazy module half loaded
# (python/cpython#114763, fixed in 3.12 with a lock); this is 3.12's version of its module.


class _LazyModule(types.ModuleType):
    def __getattribute__(self, attr: str) -> object:
        spec = object.__getattribute__(self, "__spec__")
        state = spec.loader_state
        with state["lock"]:
            if object.__getattribute__(self, "__class__") is _LazyModule:
                cls = state["__class__"]
                if state["is_loading"]:  # the loading thread itself, during exec_module
                    return cls.__getattribute__(self, attr)
                state["is_loading"] = True
                now = cls.__getattribute__(self, "__dict__")
                then = state["__dict__"]
                updated = {k: v for k, v in now.items() if k not in then or then[k] is not v}
                spec.loader.exec_module(self)
                if spec.name in sys.modules and sys.modules[spec.name] is not self:
                    raise ValueError(f"module {spec.name!r} substituted during a lazy load")
                now.update(updated)
                if isinstance(self, _LazyModule):
                    object.__setattr__(self, "__class__", cls)
        return getattr(self, attr)

    def __delattr__(self, attr: str) -> None:
        self.__getattribute__(attr)
        delattr(self, attr)


class _LazyLoader(importlib.util.LazyLoader):
    def exec_module(self, module: types.ModuleType) -> None:
        import threading  # only once a module is made lazy: the boot needs it later anyway

        module.__spec__.loader = self.loader  # type: ignore[union-attr]
        module.__loader__ = self.loader
        state = {
            "__dict__": module.__dict__.copy(),
            "__class__": module.__class__,
            "lock": threading.RLock(),
            "is_loading": False,
        }
        module.__spec__.loader_state = state  # type: ignore[union-attr]
        module.__class__ = _LazyModule


# ------------------------------------------------------------------ making the bundle


def _load_by_path(name: str, path: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record_interpreter_boot() -> None:
    """Do what the interpreter's boot does, so that sys.modules holds what it imports."""
    here = os.path.dirname(os.path.abspath(__file__))
    interpreter = _load_by_path("localbox_interpreter", os.path.join(here, "interpreter.py"))
    package = interpreter.import_ipython_core()
    sys.modules["jedi"] = None  # type: ignore[assignment]
    devnull = os.open(os.devnull, os.O_WRONLY)
    shell = interpreter.make_shell(interpreter.Events(devnull))
    shell.run_cell("print(1)", store_history=True)
    shell.load_magics()
    package.__spec__.loader.exec_module(package)


def write_bundle(path: str, modules: dict[str, types.ModuleType], under: str) -> int:
    """Write the bundle of the modules loaded from source files under the folder `under`
    (never the agent's own); returns how many it holds."""
    agent_dir = os.path.dirname(os.path.abspath(__file__))
    index: dict[str, tuple[str, bool, int, int]] = {}
    blobs: list[bytes] = []
    offset = 0
    for name, module in sorted(modules.items()):
        spec = getattr(module, "__spec__", None)
        loader = getattr(spec, "loader", None)
        if not isinstance(loader, importlib.machinery.SourceFileLoader) or spec is None:
            continue
        origin = str(spec.origin)
        if origin.startswith(agent_dir) or not origin.startswith(under):
            continue
        code = marshal.dumps(loader.get_code(name))  # checked against its source
        package = spec.submodule_search_locations is not None
        index[name] = (origin, package, offset, len(code))  # offset past the index
        blobs.append(code)
        offset += len(code)
    header = marshal.dumps((importlib.util.MAGIC_NUMBER, _FORMAT, index))
    temp = f"{path}.tmp"
    with open(temp, "wb") as f:
        f.write(len(header).to_bytes(8, "little"))
        f.write(header)
        for blob in blobs:
            f.write(blob)
    os.replace(temp, path)
    return len(index)


if __name__ == "__main__":
    record_interpreter_boot()
    count = write_bundle(sys.argv[1] if len(sys.argv) > 1 else BUNDLE, dict(sys.modules), "/usr/")
    print(f"boot bundle: {count} modules", file=sys.stderr)

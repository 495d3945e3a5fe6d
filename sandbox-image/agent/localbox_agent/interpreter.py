"""The Python interpreter process: an IPython shell that runs the calls the agent sends.

It runs as the sandbox user, started by kernel.py with `python3 -c` so that nothing of the
agent is on its import path. It is self-contained (it imports nothing from localbox_agent).

  fd 0             /dev/null
  fd 1, fd 2       pipes: whatever the code (or a process it starts) prints, as it prints it
  argv[1] (read)   requests, one JSON line each: {"code", "silent", "max_image_bytes",
                   "max_error_bytes"}
  argv[2] (write)  events, one JSON line each: {"t": "ready"}, {"t": "display", "data"},
                   {"t": "result", "data"}, {"t": "error", "ename", "evalue", "traceback"},
                   {"t": "done"}

Everything here runs with the user's privileges, so the agent trusts none of it: it bounds
and checks every line. Rich outputs larger than the call's image budget are replaced by a
small note here, to spare the pipe.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
FLUSH_SECONDS = 0.1
IDLE_START = 0.2
limits = {"max_image_bytes": 16 << 20, "max_error_bytes": 64 << 10}


def cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[localbox: truncated, {len(text) - limit} more characters]"


class Events:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def send(self, event: dict[str, Any]) -> None:
        data = (json.dumps(event, default=str) + "\n").encode("utf-8", "replace")
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except InterruptedError:
                continue
            view = view[written:]


def bounded(data: dict[str, Any]) -> dict[str, Any]:
    """Rich output within the call's image budget: a larger image becomes a note."""
    kept: dict[str, Any] = {}
    for mime, value in data.items():
        if mime in IMAGE_TYPES and isinstance(value, str):
            if len(value) > limits["max_image_bytes"]:
                kept["localbox/too-large"] = {"media_type": mime, "bytes": len(value)}
                continue
            kept[mime] = value
        elif mime == "text/plain":
            kept[mime] = cut(str(value), 1 << 20)
    return kept


def flush_now_and_then() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()


def main(
    load_lazy: Callable[[], None] = lambda: None, boot_finished: Callable[[], None] = lambda: None
) -> None:
    """Serve calls until the agent closes the requests pipe. load_lazy loads the modules
    fastboot left lazy (see Shell.settle); boot_finished is called once everything IPython
    loads at start is loaded (fastboot's imports end there)."""
    # The agent ignores SIGINT and that is inherited: interrupts must raise here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    requests = os.fdopen(int(sys.argv[1]), "rb")
    events = Events(int(sys.argv[2]))
    for fd in (requests.fileno(), int(sys.argv[2])):
        os.set_inheritable(fd, False)  # what the code starts never gets them
    # Text streams on the pipes that write whole lines (and carriage returns) at once, and
    # anything else within FLUSH_SECONDS: output reaches the agent as it is printed.
    for fd, name in ((1, "stdout"), (2, "stderr")):
        raw = io.BufferedWriter(io.FileIO(fd, "w", closefd=False), buffer_size=1 << 16)
        stream = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", line_buffering=True)
        setattr(sys, name, stream)
    threading.Thread(target=flush_now_and_then, name="localbox-flush", daemon=True).start()
    sys.argv = [""]
    package = import_ipython_core()
    # jedi serves tab completion, which nobody asks for here; IPython does without it, and
    # not importing it saves a fifth of the start. The code may still import it.
    sys.modules["jedi"] = None  # type: ignore[assignment]
    try:
        shell = make_shell(events)
    finally:
        if sys.modules.get("jedi", 0) is None:
            del sys.modules["jedi"]
    package.InteractiveShell = type(shell).__mro__[1]
    shell.load_lazy = load_lazy
    events.send({"t": "ready"})
    finish_in_background(shell, package, boot_finished)
    if not select.select([requests], [], [], IDLE_START)[0]:
        shell.settle()  # no call yet: the rest of the start need not wait for one
    while True:
        try:
            line = requests.readline()
            if not line:
                return
            request = json.loads(line)
            for key in limits:
                value = request.get(key)
                if isinstance(value, int) and value > 0:
                    limits[key] = value
            silent = request.get("silent") is True
            shell.run_cell(str(request.get("code", "")), store_history=not silent, silent=silent)
        except KeyboardInterrupt:
            pass  # an interrupt that came between calls
        except Exception as exc:  # never die on one bad request
            events.send({"t": "error", "ename": type(exc).__name__, "evalue": str(exc)})
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except Exception:
                pass
        events.send({"t": "done"})
        shell.settle()  # once the first call is answered


def import_ipython_core() -> Any:
    """Make IPython's core importable without running IPython/__init__.py, which loads the
    terminal front end (prompt_toolkit, jedi): two thirds of the start. The package gets
    what most code reaches for at once, and runs its own init in the background once the
    shell is up (see finish_ipython_import)."""
    import importlib.util

    spec = importlib.util.find_spec("IPython")
    if spec is None or spec.loader is None:
        return None
    package = importlib.util.module_from_spec(spec)  # made, not executed
    sys.modules["IPython"] = package
    from IPython.core import release
    from IPython.core.getipython import get_ipython

    package.get_ipython = get_ipython
    package.version_info = release.version_info
    package.__version__ = release.__version__
    return package


def finish_in_background(shell: Any, package: Any, boot_finished: Callable[[], None]) -> None:
    """What the shell can do without for its first call, done in a thread: IPython's magics
    (see Shell.init_magics), then IPython/__init__.py in the package made by
    import_ipython_core. It starts once the shell settles (Shell.settle): after the first
    call (or at once if that call needs a magic), or after IDLE_START if no call comes:
    sharing the GIL with it would double the first call's time."""

    def run() -> None:
        shell.start_loading.wait()
        try:
            shell.load_magics()
        finally:
            shell.magics_loaded.set()
        if package is not None:
            with contextlib.suppress(Exception):
                package.__spec__.loader.exec_module(package)
        boot_finished()

    threading.Thread(target=run, name="localbox-ipython-init", daemon=True).start()


@contextlib.contextmanager
def no_jedi_in_this_thread() -> Iterator[None]:
    """`import jedi` fails in this thread (and only here: the user's code, running meanwhile
    in another, may import it)."""
    me = threading.get_ident()

    class Refuse:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> None:
            if name == "jedi" and threading.get_ident() == me:
                raise ModuleNotFoundError("jedi is not used here", name=name)

    sys.meta_path.insert(0, Refuse)  # type: ignore[arg-type]
    try:
        yield
    finally:
        sys.meta_path.remove(Refuse)  # type: ignore[arg-type]


def make_shell(events: Events) -> Any:
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.magic import MagicsManager
    from IPython.core.prefilter import is_shadowed
    from traitlets import Any as AnyTrait
    from traitlets.config import Config

    class Publisher(DisplayPublisher):  # type: ignore[misc]
        def publish(self, data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> None:
            if isinstance(data, dict):
                events.send({"t": "display", "data": bounded(data)})

        def clear_output(self, wait: bool = False) -> None:
            pass

    class ResultHook(DisplayHook):  # type: ignore[misc]
        """The value of a cell's last expression, sent rather than printed."""

        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict: Any, md_dict: Any = None) -> None:
            if isinstance(format_dict, dict):
                events.send({"t": "result", "data": bounded(format_dict)})

    class Holder:
        """Where the magics functions registered before load_magics are set."""

    class Manager(MagicsManager):  # type: ignore[misc]
        user_magics = AnyTrait(allow_none=True)  # a Holder until load_magics

    class Shell(InteractiveShell):  # type: ignore[misc]
        def _showtraceback(self, etype: Any, evalue: Any, stb: Any) -> None:
            limit = limits["max_error_bytes"]
            lines = stb if isinstance(stb, list) else [str(stb)]
            events.send(
                {
                    "t": "error",
                    "ename": cut(getattr(etype, "__name__", str(etype)), 256),
                    "evalue": cut(str(evalue), limit),
                    "traceback": cut("\n".join(str(x) for x in lines), limit),
                }
            )

        def enable_gui(self, gui: Any = None) -> None:
            pass

        # IPython's magics are a third of its start (their modules, and an argument parser
        # each). The shell starts with an empty magics manager, which its aliases (!ls as
        # ls, ...) fill at once; the magics follow in a thread (load_magics), and whatever
        # looks one up, or names magics in a call, waits for them first.
        start_loading = threading.Event()
        magics_loaded = threading.Event()
        _settling = threading.Lock()
        load_lazy: Callable[[], None] = staticmethod(lambda: None)

        def settle(self) -> None:
            """Load the modules fastboot left lazy, in this thread, then let the background
            work begin. So lazy modules load between calls, or in the thread that touches
            one first; never in the background while a call runs (a thread that imports a
            submodule of a package being loaded lazily elsewhere could wait on it forever)."""
            with self._settling:
                if not self.start_loading.is_set():
                    self.load_lazy()
                    self.start_loading.set()

        def wait_for_magics(self) -> None:
            self.settle()
            self.magics_loaded.wait()

        def init_magics(self) -> None:
            self.magics_manager = Manager(shell=self, parent=self, user_magics=Holder())
            self.magics_manager.registry.clear()  # IPython's UserMagics go there, later
            self.configurables.append(self.magics_manager)
            self.register_magics = self.magics_manager.register

        # Tab completion, which nothing asks for here, is made with the magics: whatever
        # reaches for it first waits for them.
        def init_completer(self) -> None:
            pass

        @property
        def Completer(self) -> Any:  # IPython names it so
            if "_completer" not in self.__dict__:
                self.wait_for_magics()
            return self.__dict__["_completer"]

        @Completer.setter
        def Completer(self, value: Any) -> None:
            self.__dict__["_completer"] = value

        def load_magics(self) -> None:
            """What InteractiveShell.init_magics does, into the manager made at start, and
            then its init_completer. A magic registered here replaces an alias of its name,
            as the alias would have been refused had it come second."""
            from IPython.core import magics as m

            manager = self.magics_manager
            user_magics = m.UserMagics(self)
            for name, value in vars(manager.user_magics).items():  # the aliases' functions
                setattr(user_magics, name, value)
            manager.user_magics = user_magics
            manager.registry["UserMagics"] = manager.user_magics
            manager.register(
                m.AutoMagics, m.BasicMagics, m.CodeMagics, m.ConfigMagics, m.DisplayMagics,
                m.ExecutionMagics, m.ExtensionMagics, m.HistoryMagics, m.LoggingMagics,
                m.NamespaceMagics, m.OSMagics, m.PackagingMagics, m.PylabMagics,
                m.ScriptMagics, m.AsyncMagics,
            )  # fmt: skip
            manager.register_alias("ed", "edit")
            manager.register_alias("hist", "history")
            manager.register_alias("rep", "recall")
            manager.register_alias("SVG", "svg", "cell")
            manager.register_alias("HTML", "html", "cell")
            manager.register_alias("file", "writefile", "cell")
            manager.magics["line"]["colors"](self.colors)
            with no_jedi_in_this_thread():  # as at start, the completer does without it
                InteractiveShell.init_completer(self)

        def find_line_magic(self, magic_name: str) -> Any:
            self.wait_for_magics()
            return super().find_line_magic(magic_name)

        def find_cell_magic(self, magic_name: str) -> Any:
            self.wait_for_magics()
            return super().find_cell_magic(magic_name)

        def find_magic(self, magic_name: str, magic_kind: str = "line") -> Any:
            # Automagic asks this of the first word of every one-line call (print, import,
            # 1/0, ...); what is not a name, or a name that a variable, a builtin or a
            # keyword shadows, is never called as a magic, so it need not wait.
            if (
                not self.magics_loaded.is_set()
                and magic_name.isidentifier()
                and not is_shadowed(magic_name, self)
            ):
                self.wait_for_magics()
            return super().find_magic(magic_name, magic_kind)

        def run_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> Any:
            if "magic" in raw_cell:  # magics_manager, register_magic_function, ...
                self.wait_for_magics()
            return super().run_cell(raw_cell, *args, **kwargs)

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    config.InteractiveShell.xmode = "Context"
    return Shell.instance(config=config, display_pub_class=Publisher, displayhook_class=ResultHook)


if __name__ == "__main__":
    main()

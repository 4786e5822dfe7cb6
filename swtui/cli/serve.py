"""`swtui serve`: the inspector in a browser, through textual-serve (the Textual project's server).

Each browser tab that connects gets its own app process, `python -m swtui MODEL …` with the same
options, driven over a websocket; keys and the mouse reach it as they would in a terminal. There is
no authentication, so the server binds to localhost unless `--host` says otherwise, and then warns
who can reach it. Ctrl+C (or SIGTERM) stops the server and every app process it started.
"""

from __future__ import annotations

import asyncio
import ipaddress
import shlex
import signal
import sys
import time
from pathlib import Path

from swtui.core.errors import UserInputError

#: the page textual-serve serves, changed so that it loads nothing from outside this server
TEMPLATES = Path(__file__).with_name("templates")
#: how long the app processes get to end on SIGTERM before they are killed
STOP_GRACE_S = 3.0
#: inspector options `serve` forwards to each app process (dest -> flag); the rest are serve's own
NOT_FORWARDED = {"help", "version", "host", "port", "model"}


def app_argv(args, inspector_parser) -> list[str]:
    """The command line of one app process: this Python, `-m swtui`, the model and every inspector
    option the user gave, rebuilt from the parsed values (so a bad value never reaches a child)."""
    argv = [sys.executable, "-m", "swtui"]
    if args.model:
        argv.append(args.model)
    for action in inspector_parser._actions:  # the parser is the inspector's own: every option it knows
        if action.dest in NOT_FORWARDED or not action.option_strings:
            continue
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = action.option_strings[-1]
        argv += [flag] if action.nargs == 0 else [flag, str(value)]
    return argv


def is_local(host: str) -> bool:
    """Only this machine can connect to an address that is `localhost` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, port: int) -> str | None:
    """What binding `host` exposes, or None for a loopback address."""
    if is_local(host):
        return None
    if host in ("0.0.0.0", "::", ""):
        who = f"anyone who can reach this machine on any of its addresses, port {port}"
    else:
        who = f"anyone who can reach {host} port {port}"
    return (f"swtui serve: warning: no authentication: {who} can drive the inspector (run the model, edit its "
            f"weights, write snapshots to this machine's disk). Prefer the default 127.0.0.1 and an SSH tunnel: "
            f"ssh -L {port}:localhost:{port} THIS-MACHINE")


def _server_class():
    """The textual-serve Server, adapted (imported here: only `serve` needs aiohttp)."""
    import logging

    import psutil
    from textual_serve.server import Server

    class InspectorServer(Server):
        """textual-serve's Server with swtui's offline page, URLs that follow the address the browser
        used, and a shutdown that ends every app process it started."""

        def __init__(self, command: str, host: str, port: int, title: str, model: str):
            super().__init__(command, host=host, port=port, title=title, templates_path=TEMPLATES)
            self.model = model
            self._sessions: set[asyncio.Task] = set()

        def initialize_logging(self) -> None:
            super().initialize_logging()
            logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # not a line per request

        def serve(self, debug: bool = False) -> None:
            """Server.serve, but saying where it listens once it does (not before it binds, as
            textual-serve's banner does), in one line."""
            from aiohttp import web

            self.debug = debug
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
            host = f"[{self.host}]" if ":" in self.host else self.host
            listening = (f"swtui serve: the inspector on {self.model} at http://{host}:{self.port}/ "
                         "(one app process per browser tab; Ctrl+C stops the server and all of them)")
            web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False, loop=loop,
                        print=lambda *_: print(listening, flush=True))

        async def on_startup(self, app) -> None:
            pass  # textual-serve prints its banner here, before the port is bound

        async def handle_index(self, request):
            # The page's websocket and static URLs are absolute, built from public_url: follow the
            # address the browser used (an SSH tunnel's local port, the machine's name), not the
            # bind address. handle_index does not yield before it reads public_url.
            self.public_url = f"{request.scheme}://{request.host}"
            return await super().handle_index(request)

        async def handle_websocket(self, request):
            # one task per browser tab, for on_shutdown to end (aiohttp waits for open websockets)
            task = asyncio.current_task()
            self._sessions.add(task)
            try:
                return await super().handle_websocket(request)
            finally:
                self._sessions.discard(task)

        async def on_shutdown(self, app) -> None:
            """Ctrl+C: end every process this server started, then the tabs' sessions."""
            await asyncio.to_thread(stop_children, STOP_GRACE_S)
            for task in list(self._sessions):
                task.cancel()

    def stop_children(grace_s: float) -> None:
        """SIGTERM every descendant (an app ends cleanly on it), SIGKILL what is left after grace_s."""
        children = psutil.Process().children(recursive=True)
        for signal_them in (psutil.Process.terminate, psutil.Process.kill):
            for child in children:
                try:
                    signal_them(child)
                except psutil.NoSuchProcess:
                    pass
            if not (children := wait_gone(children, grace_s)):
                return

    def wait_gone(procs: list, timeout: float) -> list:
        """The processes still alive after up to `timeout` s. Polls rather than waits: reaping them
        is asyncio's job (its child watcher holds their exit status for textual-serve)."""
        deadline = time.monotonic() + timeout
        while True:
            alive = []
            for proc in procs:
                try:
                    if proc.status() != psutil.STATUS_ZOMBIE:
                        alive.append(proc)
                except psutil.NoSuchProcess:
                    pass
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.05)

    return InspectorServer


def cmd_serve(args) -> int:
    from swtui.cli.parser import build_parser

    if not 0 < args.port < 65536:
        raise UserInputError(f"--port must be 1–65535, not {args.port}")
    if args.eval_file:  # read here: a bad path fails now, not in every tab
        from swtui.core.evidence.metrics import eval_text

        eval_text(args.eval_file)
    if warning := exposure_warning(args.host, args.port):
        print(warning, file=sys.stderr, flush=True)
    argv = app_argv(args, build_parser(None))
    model = args.model or "the demo model"
    # `exec`: textual-serve starts the command through a shell; the app replaces it, one process a tab
    server = _server_class()("exec " + shlex.join(argv), args.host, args.port, f"swtui — {model}", model)
    try:
        server.serve()
    except OSError as err:  # the port is taken, the address is not this machine's…
        raise UserInputError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
    return 0

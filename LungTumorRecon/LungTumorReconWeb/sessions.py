"""The web app's front server: one app process per browser session, behind one public port.

A browser's first page starts a session: a ``lungtumorrecon app --session-child`` process on
a loopback port, with its own temporary folder (its uploads, its jobs' files) and its own
scene; a cookie names the session, and every request and websocket of that browser is proxied
to its process, which answers only requests that carry its session key. Past the session
limit a 'server full' page answers. A session with no browser activity for the idle time
ends: its process is stopped and its folder removed. Off loopback a token is required on
every page and websocket (``?token=T`` once, then a cookie).

aiohttp and the standard library only: the front server holds no scene, no CT, no model.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from LungTumorReconWeb.launch import DIR_ENV, KEY_ENV, KEY_HEADER, PORT_FILE

SESSION_COOKIE = "ltr_session"
TOKEN_COOKIE = "ltr_token"
REAP_EVERY_S = 5.0
START_TIMEOUT_S = 180.0
# Not passed on between the browser and a session's app (each hop has its own).
HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "host", "cookie"}


@dataclass
class FrontConfig:
    host: str
    port: int
    token: str | None  # None: no token (loopback only)
    max_sessions: int
    idle_s: float
    child_argv: list[str]  # the session app's command, without --out
    out_dir: Path


@dataclass
class Session:
    id: str
    key: str  # the session app answers only requests carrying it
    folder: Path
    out_dir: Path
    started: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    proc: asyncio.subprocess.Process | None = None
    port: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    sockets: set = field(default_factory=set)

    def touch(self) -> None:
        self.last_seen = time.monotonic()


def _page(title: str, body: str, status: int, element_id: str) -> web.Response:
    text = (f"<!doctype html><html><head><meta charset='utf-8'><title>LungTumorRecon: {html.escape(title)}</title>"
            f"</head><body style='font-family: sans-serif; margin: 3em'><h1 id='{element_id}'>{html.escape(title)}"
            f"</h1><p>{html.escape(body)}</p></body></html>")
    return web.Response(text=text, status=status, content_type="text/html")


class FrontServer:
    """The sessions and the proxy to them."""

    def __init__(self, config: FrontConfig) -> None:
        self.config = config
        self.sessions: dict[str, Session] = {}
        self.root = Path(tempfile.mkdtemp(prefix="lungtumorrecon-sessions-"))
        self.client: aiohttp.ClientSession | None = None

    # -- access ------------------------------------------------------------------------------------
    @web.middleware
    async def check_token(self, request: web.Request, handler):
        """Every request and websocket carries the token (query or cookie) when one is set."""
        token = self.config.token
        if token is None:
            return await handler(request)
        given = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            return _page("access token needed", "Open the address the server printed, with ?token=… at its end.",
                         401, "ltr-token-needed")
        return await handler(request)

    def _set_cookies(self, request: web.Request, response: web.StreamResponse, session: Session) -> None:
        """The session's cookie; the token's, once given in the address (the websocket carries it)."""
        secure = request.secure or request.headers.get("X-Forwarded-Proto", "") == "https"
        if request.cookies.get(SESSION_COOKIE) != session.id:
            response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="Strict", secure=secure)
        if self.config.token and request.query.get("token"):
            response.set_cookie(TOKEN_COOKIE, self.config.token, httponly=True, samesite="Strict", secure=secure)

    # -- sessions ----------------------------------------------------------------------------------
    async def _session_for(self, request: web.Request) -> tuple[Session | None, web.Response | None]:
        """The browser's session; a new one for a page load without one (or a 'server full' page)."""
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        is_page = request.method == "GET" and request.path in ("/", "/index.html")
        if session is None:
            if not is_page:
                return None, _page("session ended", "Reload the page to start a new session.", 410,
                                   "ltr-session-ended")
            if len(self.sessions) >= self.config.max_sessions:
                return None, _page("server full", f"All {self.config.max_sessions} sessions of this server are in "
                                   "use. Try again later.", 503, "ltr-server-full")
            session = self._new_session()
        session.touch()
        try:
            await asyncio.wait_for(asyncio.shield(session.started), START_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the page says why; the server stays up
            await self.end(session)
            return None, _page("session failed to start", str(exc) or type(exc).__name__, 502, "ltr-session-failed")
        return session, None

    def _new_session(self) -> Session:
        sid = secrets.token_urlsafe(16)
        folder = self.root / sid[:8]
        folder.mkdir(mode=0o700)
        out = self.config.out_dir / f"session-{time.strftime('%Y%m%d-%H%M%S')}-{sid[:6]}"
        session = Session(sid, secrets.token_urlsafe(24), folder, out)
        self.sessions[sid] = session
        asyncio.get_running_loop().create_task(self._start(session))
        return session

    async def _start(self, session: Session) -> None:
        env = dict(os.environ, **{KEY_ENV: session.key, DIR_ENV: str(session.folder), "TMPDIR": str(session.folder)})
        log = open(session.folder / "app.log", "wb")
        try:
            session.proc = await asyncio.create_subprocess_exec(
                *self.config.child_argv, "--out", str(session.out_dir), env=env, stdout=log,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)  # its jobs end with it
        except OSError as exc:
            session.started.set_exception(RuntimeError(f"cannot start the session's process: {exc}"))
            return
        finally:
            log.close()
        port_file = session.folder / PORT_FILE
        while not port_file.exists() or not port_file.read_text().strip():
            if session.proc.returncode is not None:
                tail = (session.folder / "app.log").read_text(errors="replace").strip().splitlines()[-1:]
                session.started.set_exception(RuntimeError(f"the session's process ended: {' '.join(tail)}"))
                return
            await asyncio.sleep(0.2)
        session.port = int(port_file.read_text())
        session.touch()  # idle from now, not from its start
        session.started.set_result(True)

    async def end(self, session: Session) -> None:
        """Stop the session's process (and its jobs) and remove its folder."""
        if self.sessions.pop(session.id, None) is None:
            return
        for ws in list(session.sockets):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"session ended")
        proc = session.proc
        if proc is not None and proc.returncode is None:
            for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                    await asyncio.wait_for(proc.wait(), wait)
                    break
                except (ProcessLookupError, asyncio.TimeoutError):
                    continue
        shutil.rmtree(session.folder, ignore_errors=True)

    async def reap(self) -> None:
        """End idle sessions, and those whose process died."""
        while True:
            await asyncio.sleep(min(REAP_EVERY_S, self.config.idle_s / 2))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.started.done():
                    continue  # starting: _session_for ends it if it fails
                dead = session.proc is not None and session.proc.returncode is not None
                if dead or now - session.last_seen > self.config.idle_s:
                    await self.end(session)

    # -- the proxy ---------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        session, refusal = await self._session_for(request)
        if refusal is not None:
            return refusal
        # "/" answers the page itself (200, so that the token's cookie comes with the page)
        path = "/index.html" if request.path == "/" else request.path
        url = f"http://127.0.0.1:{session.port}{path}"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        headers[KEY_HEADER] = session.key
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request, session, url, headers)
        async with self.client.request(request.method, url, params=request.query, headers=headers,
                                       data=request.content if request.can_read_body else None,
                                       allow_redirects=False) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS | {"content-length"}})
            self._set_cookies(request, response, session)
            if upstream.headers.get("Content-Length"):
                response.content_length = int(upstream.headers["Content-Length"])
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def _websocket(self, request: web.Request, session: Session, url: str, headers: dict) -> web.StreamResponse:
        for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Extensions"):
            headers.pop(name, None)
        browser = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await browser.prepare(request)
        session.sockets.add(browser)
        try:
            async with self.client.ws_connect(url.replace("http:", "ws:"), headers=headers, max_msg_size=0) as app:
                await asyncio.gather(self._pump(browser, app, session), self._pump(app, browser, None),
                                     return_exceptions=True)
        except aiohttp.ClientError:
            pass
        finally:
            session.sockets.discard(browser)
            await browser.close()
        return browser

    @staticmethod
    async def _pump(source, target, session: Session | None) -> None:
        """Messages one way until either side closes; browser messages count as activity."""
        try:
            async for message in source:
                if session is not None:
                    session.touch()
                if message.type == aiohttp.WSMsgType.TEXT:
                    await target.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await target.send_bytes(message.data)
                else:
                    break
        finally:
            await target.close()

    # -- life --------------------------------------------------------------------------------------
    async def _on_startup(self, app: web.Application) -> None:
        self.client = aiohttp.ClientSession(auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None))
        app["reaper"] = asyncio.get_running_loop().create_task(self.reap())

    async def _on_cleanup(self, app: web.Application) -> None:
        app["reaper"].cancel()
        for session in list(self.sessions.values()):
            await self.end(session)
        await self.client.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self.check_token], client_max_size=0)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app


def serve(config: FrontConfig) -> None:
    """Run the front server until interrupted; every session ends with it."""
    front = FrontServer(config)
    host = f"[{config.host}]" if ":" in config.host else config.host
    query = f"?token={config.token}" if config.token else ""
    print(f"LungTumorRecon web app: open http://{host}:{config.port}/{query} "
          f"(up to {config.max_sessions} sessions; not for clinical use)", flush=True)
    web.run_app(front.application(), host=config.host, port=config.port, print=None,
                handle_signals=True, shutdown_timeout=5.0)
    sys.stdout.flush()

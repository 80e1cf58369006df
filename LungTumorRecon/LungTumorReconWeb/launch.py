"""``lungtumorrecon app``'s options and start: the command line checks everything it can
before a server starts, then runs the front server (:mod:`LungTumorReconWeb.sessions`), which
starts one app process per browser session (this same command with ``--session-child``).
Imports neither trame nor aiohttp at the top: ``lungtumorrecon --help`` works without them."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path

from LungTumorReconLib.errors import InputError, UnavailableError

DEFAULT_MAX_SESSIONS = 4
DEFAULT_IDLE_MINUTES = 30.0
DEFAULT_MAX_UPLOAD_MB = 1024
# What a session's app process gets from the front server (not on its command line, which any
# user of the machine can read).
KEY_ENV = "LTR_SESSION_KEY"
DIR_ENV = "LTR_SESSION_DIR"
KEY_HEADER = "X-LTR-Session-Key"  # the front server's requests carry the key in it
PORT_FILE = "port"  # in the session's folder: the app's port, once it answers


def add_arguments(app: argparse.ArgumentParser) -> None:
    app.add_argument("input", nargs="?", help="CT each new session opens (DICOM folder or image file; "
                     "default: the bundled sample)")
    app.add_argument("--seeds", type=Path, help="Slicer markups file (.mrk.json) with seeds to start from")
    app.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for every "
                     "interface, which needs a token)")
    app.add_argument("--out", type=Path, default=Path("."),
                     help="folder the scene bundles (.mrb) are saved in, in a subfolder per session")
    app.add_argument("--data", type=Path, metavar="DIR",
                     help="server folder of CTs (image files, DICOM folders) the browser may open")
    app.add_argument("--token", help="the access token (default off loopback: a random one, printed in the URL)")
    app.add_argument("--max-sessions", type=int, default=DEFAULT_MAX_SESSIONS,
                     help=f"browser sessions at once, each with its own process (default: {DEFAULT_MAX_SESSIONS})")
    app.add_argument("--idle-minutes", type=float, default=DEFAULT_IDLE_MINUTES,
                     help=f"a session with no browser activity for this long ends (default: {DEFAULT_IDLE_MINUTES:g})")
    app.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB,
                     help=f"largest CT upload in MB (default: {DEFAULT_MAX_UPLOAD_MB})")
    app.add_argument("--session-child", action="store_true", help=argparse.SUPPRESS)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536 and not (args.session_child and args.port == 0):
        raise InputError(f"--port {args.port}: give a port between 1 and 65535")
    if args.out.exists() and not args.out.is_dir():
        raise InputError("--out exists and is not a folder", args.out)
    if args.data is not None and not args.data.is_dir():
        raise InputError("--data: not a folder", args.data)
    if args.max_sessions < 1:
        raise InputError(f"--max-sessions {args.max_sessions}: give 1 or more")
    if not args.idle_minutes > 0:
        raise InputError(f"--idle-minutes {args.idle_minutes:g}: give a time above 0")
    if not args.max_upload_mb > 0:
        raise InputError(f"--max-upload-mb {args.max_upload_mb:g}: give a size above 0")
    if args.token is not None and (len(args.token) < 8 or not args.token.isprintable() or " " in args.token):
        raise InputError("--token: give 8 or more printable characters without spaces")


def _read_case(args: argparse.Namespace, sample_ct: Path):
    from LungTumorReconLib.io.ct import read_ct
    from LungTumorReconLib.io.seeds import check_seeds_in_volume, read_seeds

    ct = read_ct(args.input or sample_ct)
    seeds = []
    if args.seeds is not None:
        seeds = read_seeds(args.seeds)
        check_seeds_in_volume(seeds, ct.geometry, args.seeds)
    return ct, seeds


def cmd_app(args: argparse.Namespace, sample_ct: Path) -> int:
    """Read the CT (and seeds) first, so that bad input is refused before a server starts."""
    _check(args)
    ct, seeds = _read_case(args, sample_ct)
    if args.session_child:
        return _serve_session(args, ct, seeds)
    for warning in ct.warnings:
        sys.stderr.write(f"warning: {warning}\n")
    del ct  # each session reads its own
    try:
        from LungTumorReconWeb import sessions
        import trame_slicer  # noqa: F401 - the sessions need it: say so now, not at the first page
    except ImportError as exc:
        raise UnavailableError(f"the web app needs trame-slicer ({exc}); install with: pip install "
                               "'lungtumorrecon[web]'") from None
    token = args.token
    if token is None and not is_loopback(args.host):
        token = secrets.token_urlsafe(18)  # off loopback, never without one
    child = [sys.executable, "-m", "LungTumorReconLib.cli", "app", "--session-child", "--host", "127.0.0.1",
             "--port", "0", "--max-upload-mb", str(args.max_upload_mb)]
    child += [str(Path(args.input).resolve())] if args.input else []
    child += ["--seeds", str(args.seeds.resolve())] if args.seeds else []
    child += ["--data", str(args.data.resolve())] if args.data else []
    config = sessions.FrontConfig(host=args.host, port=args.port, token=token, max_sessions=args.max_sessions,
                                  idle_s=60.0 * args.idle_minutes, child_argv=child, out_dir=args.out.resolve())
    sessions.serve(config)
    return 0


def _serve_session(args: argparse.Namespace, ct, seeds) -> int:
    """One browser session's app, on loopback, answering only its front server."""
    from LungTumorReconWeb.app import serve

    key, folder = os.environ.get(KEY_ENV, ""), os.environ.get(DIR_ENV, "")
    if not key or not folder:
        raise InputError(f"--session-child is started by the front server (it sets {KEY_ENV} and {DIR_ENV})")
    parent = os.getppid()

    def end_with_the_front_server() -> None:  # a killed front server leaves no session or folder behind
        while os.getppid() == parent:
            time.sleep(2.0)
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            Path(folder).parent.rmdir()  # the front server's own folder, once its last session's is gone
        os._exit(0)

    threading.Thread(target=end_with_the_front_server, daemon=True).start()
    serve(ct, seeds, host=args.host, port=args.port, out_dir=args.out, data_dir=args.data,
          max_upload_bytes=int(args.max_upload_mb * 1e6), session_key=key, session_dir=Path(folder))
    return 0

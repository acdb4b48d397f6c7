"""Finding and killing the client process on the other end of a request, for ``kill`` faults.

A crash test needs the client killed at an exact point (before a write is applied, or after it
is applied and before the answer arrives), which a timer in the test cannot hit. The world sees
that point, so it does the killing: the request's TCP peer (``REMOTE_ADDR``/``REMOTE_PORT``) is
looked up in ``/proc/net/tcp`` and the process holding that socket is sent SIGKILL. Only a
process whose name (``/proc/PID/comm``) is the one the rule names is ever killed, and never the
world itself. Linux only, client and world on one machine (loopback), as all tests are.
"""

from __future__ import annotations

import os
import signal
import time

PROC = "/proc"


def _hex_address(host: str, port: int) -> str:
    """``/proc/net/tcp``'s spelling of an IPv4 address and port (little-endian hex)."""
    octets = [int(part) for part in host.split(".")]
    return f"{octets[3]:02X}{octets[2]:02X}{octets[1]:02X}{octets[0]:02X}:{port:04X}"


def _socket_inode(peer_host: str, peer_port: int, server_port: int) -> str | None:
    """The inode of the client's end of the connection (local = peer, remote = our port)."""
    local = _hex_address(peer_host, peer_port)
    try:
        with open(f"{PROC}/net/tcp", encoding="ascii") as table:
            next(table, None)
            for line in table:
                fields = line.split()
                if len(fields) > 9 and fields[1] == local and fields[2].endswith(f":{server_port:04X}"):
                    return fields[9]
    except OSError:
        return None
    return None


def owner(environ: dict) -> int | None:
    """The pid of the process that holds the client end of this request's connection."""
    host = environ.get("REMOTE_ADDR") or ""
    try:
        peer_port = int(environ.get("REMOTE_PORT") or 0)
        server_port = int(environ.get("SERVER_PORT") or 0)
    except ValueError:
        return None
    if host != "127.0.0.1" or not peer_port or not server_port:
        return None
    inode = _socket_inode(host, peer_port, server_port)
    if inode is None:
        return None
    wanted = f"socket:[{inode}]"
    me = os.getpid()
    for name in os.listdir(PROC):
        if not name.isdigit() or int(name) == me:
            continue
        fds = f"{PROC}/{name}/fd"
        try:
            for fd in os.listdir(fds):
                if os.readlink(f"{fds}/{fd}") == wanted:
                    return int(name)
        except OSError:
            continue
    return None


def name_of(pid: int) -> str | None:
    try:
        with open(f"{PROC}/{pid}/comm", encoding="utf-8") as comm:
            return comm.read().strip()
    except OSError:
        return None


def gone(pid: int) -> bool:
    """Dead: no longer in /proc, or a zombie waiting for its parent."""
    try:
        with open(f"{PROC}/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def kill(pid: int, wait_seconds: float = 5.0) -> bool:
    """SIGKILL ``pid`` and wait (bounded) until it is dead; whether it died."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.005)
    return gone(pid)

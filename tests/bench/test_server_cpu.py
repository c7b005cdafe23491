"""The catalogue bench's CPU per request: servers found by the port they listen on."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

from bench.server_cpu import ServerCpu, ServerGroup, groups_of

CHILD = """
import time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("spent", flush=True)
time.sleep(60)
"""


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_the_listener_and_its_children_are_counted() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with_children = ServerCpu([ServerGroup("server", port, children=True)])
        alone = ServerCpu([ServerGroup("server", port)])
        child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE)
        try:
            with with_children.measuring() as both, alone.measuring() as listener_only:
                assert child.stdout is not None
                assert child.stdout.readline().strip() == b"spent"  # 0.3 s of its CPU
                _burn(0.2)  # this process listens: 0.2 s of the listener's CPU
        finally:
            child.kill()
            child.wait()
    # CPU seconds as the kernel counts them (clock ticks), not wall time.
    assert both["server"] >= 0.2 + 0.3 - 0.05
    assert 0.2 - 0.05 <= listener_only["server"] < 0.2 + 0.3 - 0.05


def test_only_servers_on_this_machine_are_measured() -> None:
    groups = groups_of(
        "http://127.0.0.1:3001/",
        "postgresql+asyncpg://postgres@127.0.0.1:54329/shop",
        "redis://db.example.com:6379/0",
    )
    assert [(g.name, g.port, g.children) for g in groups] == [
        ("API", 3001, False),
        ("PostgreSQL", 54329, True),
    ]

"""Child process groups (a code server and its run worker, a `vllm serve` and its engine core): stopped whole."""

from __future__ import annotations

import os
import signal
import time


def stop_process_group(group: int, grace_s: float = 5.0, leader=None) -> None:
    """Every process of `group` gone: SIGTERM, then SIGKILL to what is left after `grace_s`. `leader`: the group's
    own `Popen`, when it is this process's child: reaped as it exits (an unreaped exit still counts as in the group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + grace_s
        while time.time() < deadline:
            if leader is not None:
                leader.poll()
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

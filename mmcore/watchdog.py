"""Workers end with their launcher.

Killing ``accelerate launch`` (or ``torchrun``) with SIGKILL gives it no chance
to stop its workers; left alone they train on as orphans and write into the
run folder. A worker started by a launcher asks Linux to SIGKILL it when its
parent dies (``PR_SET_PDEATHSIG``), and also watches its parent from a thread
(other systems, and a parent that died before the request). Everything a run writes is atomic
(checkpoints, the model folder), so an abrupt end loses nothing finished.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

LAUNCHER_ENV = ("TORCHELASTIC_RUN_ID", "LOCAL_RANK")  # set by torch.distributed.run, which accelerate launch uses


def stop_with_launcher(poll_s: float = 0.5) -> bool:
    """Under a launcher, start a daemon thread that ends this process when the launcher dies; True if started."""
    if not any(key in os.environ for key in LAUNCHER_ENV):
        return False
    launcher = os.getppid()
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="mmcore-launcher-watch", daemon=True).start()
    return True

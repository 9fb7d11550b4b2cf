"""``mm`` with the toy modality added, as a script the tests run under ``accelerate launch`` or as a
plain subprocess, with two ways to make a run fail for real:

  --max-file-bytes=N   no file may grow past N bytes (a disk that fills up: writes fail with EFBIG)
  --kill-at-step=N     after step N is logged, SIGKILL the launcher (under ``accelerate launch``,
                       whose workers must then end) or this process
"""

import os
import resource
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from toy import ToyPlugin  # noqa: E402

import mmcore.executor  # noqa: E402
from mmcore import cli, plugins  # noqa: E402


def kill_at(step: int) -> None:
    target = os.getppid() if "LOCAL_RANK" in os.environ else os.getpid()
    after_step = mmcore.executor.StepLog.after_step

    def after_step_then_kill(self, loss):
        after_step(self, loss)
        if self.run.step == step and self.run.accelerator.is_main_process:  # logged already: log_every=1
            os.kill(target, signal.SIGKILL)
            time.sleep(3)  # a worker that outlived its launcher would go on from here

    mmcore.executor.StepLog.after_step = after_step_then_kill


if __name__ == "__main__":
    args = sys.argv[1:]
    while args and args[0].startswith("--") and "=" in args[0]:
        option, value = args.pop(0).split("=")
        if option == "--max-file-bytes":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write() instead of being killed
            resource.setrlimit(resource.RLIMIT_FSIZE, (int(value), int(value)))
        elif option == "--kill-at-step":
            kill_at(int(value))
    plugins.get_registry().add_plugin(ToyPlugin(), "toy")
    sys.exit(cli.main(args))

"""A Dask worker plugin for tests: the first worker to write ``after`` micrographs' outputs in one
task kills its own process with SIGKILL (no clean-up, as a node failure or the OOM killer would),
once per test (an O_EXCL flag file), after noting what it wrote and each file's (inode, mtime_ns)."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin


class KillAfterWrites(WorkerPlugin):
    name = "test-kill-after-writes"

    def __init__(self, flag: str, after: int = 2):
        self.flag = flag
        self.after = after

    def setup(self, worker) -> None:
        from epick.runtime.commands.pick import PickOutputs

        original = PickOutputs.write
        flag, after = self.flag, self.after

        def write(outputs, result):
            ok = original(outputs, result)
            written = [n for n in outputs.counts]
            if len(written) >= after:
                try:
                    fd = os.open(flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    return ok
                files = {str(p): [p.stat().st_ino, p.stat().st_mtime_ns]
                         for n in written for p in outputs.paths_for(n).values()}
                os.write(fd, json.dumps({"written": written, "files": files}).encode())
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
            return ok

        PickOutputs.write = write

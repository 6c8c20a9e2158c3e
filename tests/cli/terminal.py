"""A real command whose controlling terminal is a pseudo-terminal, its stdin and stdout being whatever
the test gives (a pipe from kb-index, say): how a user runs `kb-index . | kb-host .` in a shell.

    with OnTerminal([python, "bin/kb-host", dir], stdin=index.stdout, env=env, log=tmp/"err") as run:
        run.expect("Name for this share:")      # what the command wrote on the terminal
        run.answer("")                          # Enter
        line = run.proc.stdout.readline()       # its JSON output
"""
from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import termios
import time
from pathlib import Path
from typing import IO, Any


class OnTerminal:
    def __init__(self, cmd: list[str], *, stdin: Any, env: dict[str, str], log: Path,
                 cwd: Path | None = None) -> None:
        self.master, slave = pty.openpty()
        self.screen = ""  # everything written on the terminal so far
        self.seen = 0  # the end of the text found by the last expect
        self.log = log

        def attach() -> None:  # in the child, after setsid(): the pty becomes its controlling tty
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

        with log.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=err, env=env,
                                         cwd=cwd, text=True, start_new_session=True, preexec_fn=attach,
                                         pass_fds=(slave,))
        os.close(slave)

    def __enter__(self) -> "OnTerminal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        os.close(self.master)

    @property
    def stdout(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def read_screen(self, wait: float = 0.0) -> str:
        """What the command wrote on the terminal since the last read (waits up to `wait` s)."""
        got = ""
        while select.select([self.master], [], [], wait)[0]:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: the command closed the terminal (it exited)
                break
            if not data:
                break
            got += data.decode("utf-8", "replace")
            wait = 0.0
        self.screen += got
        return got

    def expect(self, text: str, timeout: float = 60.0) -> None:
        """Wait until the terminal shows `text` (after what the previous expect found)."""
        start = self.seen
        deadline = time.monotonic() + timeout
        while text not in self.screen[start:]:
            if time.monotonic() > deadline or (self.proc.poll() is not None and not self.read_screen()):
                raise AssertionError(f"no {text!r} on the terminal; it shows {self.screen[start:]!r}; "
                                     f"stderr: {self.log.read_text(errors='replace')[-2000:]}")
            self.read_screen(0.1)
        self.seen = self.screen.index(text, start) + len(text)

    def answer(self, text: str) -> None:
        os.write(self.master, (text + "\n").encode())

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

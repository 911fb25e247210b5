"""GPU slots of one node: give each job its own GPUs (CUDA_VISIBLE_DEVICES), never one GPU to two jobs.

Snakemake's local scheduler counts GPUs (``--resources gpu=8`` and each rule's ``resources: gpu=N``) but does not
say *which* GPUs a job gets. The workflow launches every GPU job through this module:

    python -m suite.gpus N -- COMMAND ...

which claims N free GPU indices, each by an exclusive ``fcntl.flock`` on a lock file ``gpu-<index>.lock``, sets
``CUDA_VISIBLE_DEVICES`` to them and ``exec``s COMMAND. The lock file descriptors are inherited by COMMAND (and by
its children, e.g. torchrun's workers), so the GPUs stay claimed exactly as long as the job runs, and the kernel
frees them however the job ends (exit, crash, SIGKILL): no stale claims after a killed run. When fewer than N are
free, the claimed ones are released and it waits and tries again (no deadlock between two jobs holding half).

The pool of GPUs of the node, first found of:
  $RLREPRO_GPUS            a count ("8") or a comma-separated list of indices ("0,1,4,5"); a CPU test sets it
  $CUDA_VISIBLE_DEVICES    the devices this Snakemake process was given (e.g. by `salloc --gpus 8`)
  `nvidia-smi -L`          every GPU of the machine

Lock files live in $RLREPRO_GPU_LOCKS, default ``/tmp/rlrepro-gpus-<uid>`` (shared by every workflow of the
user on the machine: two workflows on one node do not share a GPU either); inside a SLURM job the default is
per job (``...-slurm<jobid>``), because SLURM numbers each job's own GPUs from 0.
N = 0 runs COMMAND unchanged.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5


def pool() -> list[str]:
    """The GPU ids jobs may be given (see the module docstring)."""
    spec = os.environ.get("RLREPRO_GPUS", "").strip()
    if spec:
        return [str(i) for i in range(int(spec))] if spec.isdigit() else [x.strip() for x in spec.split(",") if x.strip()]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [x.strip() for x in visible.split(",") if x.strip()]
    if shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
        return [str(i) for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]
    return []


def lock_dir() -> Path:
    if os.environ.get("RLREPRO_GPU_LOCKS"):
        return Path(os.environ["RLREPRO_GPU_LOCKS"])
    job = os.environ.get("SLURM_JOB_ID")
    return Path("/tmp") / (f"rlrepro-gpus-{os.getuid()}" + (f"-slurm{job}" if job else ""))


def try_claim(n: int, ids: list[str], folder: Path) -> list[tuple[str, int]] | None:
    """N of ``ids`` locked now (id, fd), or None (nothing held) when fewer than N are free."""
    folder.mkdir(parents=True, exist_ok=True)
    held: list[tuple[str, int]] = []
    for gpu in ids:
        fd = os.open(folder / f"gpu-{gpu}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                continue
            raise
        held.append((gpu, fd))
        if len(held) == n:
            return held
    for _, fd in held:
        os.close(fd)  # closing the only descriptor releases the lock
    return None


def claim(n: int, timeout: float | None = None) -> list[tuple[str, int]]:
    """Block until N GPUs of the pool are claimed; (id, lock fd) pairs, the fds open and inheritable."""
    ids = pool()
    if n > len(ids):
        raise SystemExit(f"error: a job asks for {n} GPU(s) but this node has {len(ids)} ({ids or 'none found'}: "
                         "set RLREPRO_GPUS, CUDA_VISIBLE_DEVICES, or lower the experiment's resources.gpus)")
    folder = lock_dir()
    start, told = time.monotonic(), False
    while True:
        held = try_claim(n, ids, folder)
        if held is not None:
            for _, fd in held:
                os.set_inheritable(fd, True)
            return held
        if timeout is not None and time.monotonic() - start > timeout:
            raise SystemExit(f"error: no {n} free GPU(s) of {ids} within {timeout:.0f} s (locks in {folder})")
        if not told:
            print(f"waiting for {n} free GPU(s) of {ids} (locks in {folder})", file=sys.stderr, flush=True)
            told = True
        time.sleep(POLL_S * (0.5 + random.random()))


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        raise SystemExit("usage: python -m suite.gpus N -- COMMAND [ARGS...]")
    n, command = int(argv[0]), argv[2:]
    if n > 0:
        held = claim(n)
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpu for gpu, _ in held)
        print(f"GPUs: CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}", file=sys.stderr, flush=True)
    os.execvp(command[0], command)


def launch(gpus: int, module_args: str, torchrun: bool = True, python: str = "python") -> str:
    """The shell command of a job on ``gpus`` GPUs running ``python -m <module_args>``: through this module's
    slots when it has GPUs; through torchrun (one process per GPU) when it has more than one and ``torchrun``
    (training; an evaluation is one process that shards the model itself)."""
    if gpus > 1 and torchrun:
        command = f"torchrun --standalone --nproc_per_node {gpus} -m {module_args}"
    else:
        command = f"{python} -m {module_args}"
    return f"{python} -m suite.gpus {gpus} -- {command}" if gpus > 0 else command


if __name__ == "__main__":
    main()

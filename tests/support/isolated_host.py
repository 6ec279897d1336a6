"""Start a process as if on a host of its own: a private hostname, and no writable path shared with anyone.

Run as root through ``unshare`` (new mount and UTS namespaces; the network is shared, so services on
loopback stay reachable)::

    unshare -m -u --propagation private python -m tests.support.isolated_host SPEC.json -- COMMAND...

``launcher(spec_path)`` returns that prefix. Inside the new namespaces this module, before it ``exec``s
COMMAND (so COMMAND keeps the process id ``Popen`` reported):

1. reads the files to carry (the host's copy of trusted configs and data, the same on every host like
   an image's content) into memory;
2. sets the hostname;
3. remounts every mount read-only (but /proc and /dev/pts, kernel interfaces), so code, venv and
   everything else is like a read-only image;
4. mounts a fresh tmpfs over each private folder (``/tmp``, ``/var/tmp``, ``/dev/shm`` and any scratch
   folder the spec names): the only writable places, and nobody else sees them;
5. binds the checkout and its venv back, read-only, where a private tmpfs covered them (a CI clone under
   /tmp), then writes the carried files back at the same paths and creates the folders the spec names.

A killed host takes its private folders with it: the tmpfs mounts vanish with the last process in the
namespace. The helpers below look at a running host from outside: ``run_on`` (``nsenter``) and
``writable_mounts`` (its ``/proc/<pid>/mountinfo``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

SYSTEM_PRIVATE = ("/tmp", "/var/tmp", "/dev/shm")
# Kernel interfaces, not places to put data: left as they are.
PSEUDO_FILESYSTEMS = frozenset({"proc", "devpts", "mqueue", "sysfs", "cgroup", "cgroup2"})
KEEP_WRITABLE = ("/proc", "/dev/pts")


@dataclasses.dataclass(frozen=True)
class HostSpec:
    """One isolated host: its hostname, its private folders and what it carries into them."""

    hostname: str
    carry: tuple[str, ...] = ()  # files copied into the private folders at the same path
    private: tuple[str, ...] = SYSTEM_PRIVATE  # each gets a fresh tmpfs, in this order
    make_dirs: tuple[str, ...] = ()  # created (inside private folders) before COMMAND starts

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(dataclasses.asdict(self)))
        return path

    @classmethod
    def read(cls, path: str) -> HostSpec:
        data = json.loads(Path(path).read_text())
        return cls(**{key: tuple(value) if isinstance(value, list) else value for key, value in data.items()})


def launcher(spec_path: Path) -> list[str]:
    """The command prefix that runs what follows it on the host ``spec_path`` describes."""
    return [
        "unshare",
        "--mount",
        "--uts",
        "--propagation",
        "private",
        sys.executable,
        "-m",
        "tests.support.isolated_host",
        str(spec_path),
        "--",
    ]


def check_isolation_available() -> None:
    """Raise, saying what to do, when this machine cannot start isolated hosts (needs root and util-linux)."""
    try:
        probe = subprocess.run(
            ["unshare", "--mount", "--uts", "--propagation", "private", "true"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError as exc:
        raise RuntimeError(
            "`unshare` is missing: install util-linux (Debian: apt-get install util-linux)"
        ) from exc
    if probe.returncode != 0:
        raise RuntimeError(
            f"`unshare --mount --uts` failed ({probe.stderr.strip()}): isolated workers need root "
            "(CAP_SYS_ADMIN), as .ci/run has; run the test as root"
        )


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, stdin=subprocess.DEVNULL)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return sorted(set(points), key=lambda p: p.count("/"))


IMAGE_ROOTS = (str(Path(__file__).resolve().parents[2]), sys.prefix)  # the checkout and its venv: the "image"


def _covered(path: str, folders: tuple[str, ...]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def become(spec: HostSpec) -> None:
    """Turn the current (already unshared) mount and UTS namespaces into the host ``spec`` describes."""
    carried = {path: Path(path).read_bytes() for path in spec.carry}
    # A checkout under /tmp (a CI clone) would vanish under the private tmpfs: hold it by a file descriptor
    # and bind it back, read-only, at the same path once the tmpfs is there.
    hidden = sorted({root for root in IMAGE_ROOTS if _covered(root, spec.private)})
    outermost = [root for root in hidden if not any(_covered(root, (other,)) for other in hidden if other != root)]
    held = {root: os.open(root, os.O_PATH) for root in outermost}
    socket.sethostname(spec.hostname)
    for point in _mount_points():
        if point.startswith(KEEP_WRITABLE):
            continue
        try:
            _mount("-o", "remount,bind,ro", point)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"cannot make {point} read-only in the new mount namespace") from exc
    for folder in spec.private:
        Path(folder).mkdir(parents=True, exist_ok=True)  # scratch folders live inside /tmp's fresh tmpfs
        _mount("-t", "tmpfs", "-o", "mode=1777,size=2g", f"tmpfs-{spec.hostname}", folder)
    for root, descriptor in sorted(held.items()):
        Path(root).mkdir(parents=True, exist_ok=True)
        _mount("--no-canonicalize", "--bind", f"/proc/{os.getpid()}/fd/{descriptor}", root)
        _mount("-o", "remount,bind,ro", root)
        os.close(descriptor)
    for path, data in carried.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    for folder in spec.make_dirs:
        Path(folder).mkdir(parents=True, exist_ok=True)


def run_on(pid: int, *command: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on the host of process ``pid`` (its mount and UTS namespaces)."""
    return subprocess.run(
        ["nsenter", "--target", str(pid), "--mount", "--uts", "--", *command],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@dataclasses.dataclass(frozen=True)
class Mount:
    point: str
    filesystem: str
    device: str  # major:minor; every tmpfs instance has its own
    writable: bool


def visible_mounts(pid: int) -> list[Mount]:
    """The mounts process ``pid`` sees: for each mount point only the top one (the others are hidden)."""
    top: dict[str, Mount] = {}
    with open(f"/proc/{pid}/mountinfo") as mountinfo:
        for line in mountinfo:  # later lines are mounted on top of earlier ones at the same point
            fields = line.split()
            filesystem = fields[fields.index("-") + 1]
            options = fields[5].split(",")
            top[fields[4]] = Mount(fields[4], filesystem, fields[2], "rw" in options)
    return list(top.values())


def writable_mounts(pid: int) -> list[Mount]:
    """Where process ``pid`` can store data: writable mounts that are not kernel interfaces."""
    return [m for m in visible_mounts(pid) if m.writable and m.filesystem not in PSEUDO_FILESYSTEMS]


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: python -m tests.support.isolated_host SPEC.json -- COMMAND...")
    become(HostSpec.read(argv[0]))
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv[1:])

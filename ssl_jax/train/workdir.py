"""Who owns a workdir, and the files that say what run it holds.

A workdir is owned by one process at a time through an `fcntl` lock on
`workdir/lock`: the kernel drops it when its holder exits, however it dies,
so a crashed run never leaves it stuck. A refused run is named the holder's
pid from /proc/locks (Linux), else from the file, where a run writes its
pid once it is accepted (with `config.json`): a rerun that is refused leaves
every file as it was.
"""
import fcntl
import os
import pathlib


class Busy(RuntimeError):
  """Another live process owns the workdir."""


class Lock:
  """The exclusive lock of `workdir` (created if missing); `accept()` marks
  the run as the workdir's own; `release()` lets the next run in."""

  def __init__(self, workdir: str | pathlib.Path):
    self.path = pathlib.Path(workdir) / "lock"
    self.path.parent.mkdir(parents=True, exist_ok=True)
    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _holder(self.path) or os.pread(self._fd, 32, 0).decode(
          errors="replace").strip()
      os.close(self._fd)
      raise Busy(
          f"{self.path.parent} is in use by another run (pid "
          f"{holder or 'unknown: it is starting'}); wait for it to finish, "
          "stop it, or use another --workdir.") from None

  def accept(self):
    """Writes this process's pid, for the message another run would get."""
    os.ftruncate(self._fd, 0)
    os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

  def release(self):
    if self._fd is not None:
      os.close(self._fd)  # Closing the descriptor drops the lock.
      self._fd = None


def _holder(path: pathlib.Path) -> str:
  """The pid holding a flock on `path`, from Linux's /proc/locks ('' if
  unknown): right even before the holder has written its pid."""
  try:
    st, table = os.stat(path), pathlib.Path("/proc/locks").read_text()
  except OSError:
    return ""
  want = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
  for line in table.splitlines():
    fields = line.split()
    if len(fields) > 5 and fields[1] == "FLOCK":
      major, minor, inode = fields[5].split(":")
      if (int(major, 16), int(minor, 16), int(inode)) == want:
        return fields[4]
  return ""


def config_json(config) -> str:
  """The text of `config.json` for `config`."""
  return config.to_json_best_effort(indent=2)


def write_config(workdir: pathlib.Path, config):
  """`config.json`: the config of the run the workdir holds (atomic)."""
  tmp = workdir / "config.json.tmp"
  tmp.write_text(config_json(config))
  tmp.replace(workdir / "config.json")

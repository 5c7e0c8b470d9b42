#!/usr/bin/env python3
"""Looks at a mounted filesystem from another process, for the fusefs tests.

Usage: probe.py JSON, where JSON is a list of [operation, args...]. Prints a JSON list with one result per
operation: {"ok": value} or {"errno": "ENOENT"}. The tests serve FUSE from their own process, so they must
only look at their mounts from a child process like this one.
"""
import ctypes
import errno
import hashlib
import json
import os
import random
import sys

libc = ctypes.CDLL(None, use_errno=True)


def lstat(path):
    st = os.lstat(path)
    return {
        "mode": st.st_mode, "uid": st.st_uid, "gid": st.st_gid, "size": st.st_size, "nlink": st.st_nlink,
        "ino": st.st_ino, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
        "mtime_ns": st.st_mtime_ns, "blocks": st.st_blocks, "blksize": st.st_blksize, "dev": st.st_dev,
    }


def scandir(path):
    """Names with the type readdir reports (d_type), "." and ".." included as the kernel returns them."""
    out = {}
    for e in os.scandir(path):
        out[e.name] = "dir" if e.is_dir(follow_symlinks=False) else "symlink" if e.is_symlink() else \
            "file" if e.is_file(follow_symlinks=False) else "other"
    return out


def readdir_raw(path):
    """Every name of the directory, including "." and "..", via the C library."""
    libc.opendir.restype = ctypes.c_void_p
    libc.readdir.restype = ctypes.c_void_p
    libc.readdir.argtypes = [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    d = libc.opendir(path.encode())
    if not d:
        raise OSError(ctypes.get_errno(), "opendir")
    names = []
    try:
        while True:
            ent = libc.readdir(d)
            if not ent:
                break
            # struct dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name
            names.append(ctypes.string_at(ent + 19).decode())
    finally:
        libc.closedir(d)
    return sorted(names)


def getxattr_sized(path, name, size):
    """getxattr(2) with a buffer of exactly `size` bytes: the return value, or the errno name."""
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.getxattr(path.encode(), name.encode(), buf if size else None, ctypes.c_size_t(size))
    if n < 0:
        return {"errno": errno.errorcode[ctypes.get_errno()]}
    return {"len": n, "value": buf.raw[:n].decode("latin-1") if size else None}


def listxattr_sized(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = libc.listxattr(path.encode(), buf if size else None, ctypes.c_size_t(size))
    if n < 0:
        return {"errno": errno.errorcode[ctypes.get_errno()]}
    return {"len": n, "names": sorted(x for x in buf.raw[:n].decode().split("\0") if x) if size else None}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def pread(path, offset, length):
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    return {"len": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def random_preads(path, count, seed, max_len):
    """Random preads; returns [offset, requested, got, sha256] for each so the caller can check them."""
    rnd = random.Random(seed)
    size = os.stat(path).st_size
    fd = os.open(path, os.O_RDONLY)
    out = []
    try:
        for _ in range(count):
            off = rnd.randrange(0, size + 100)
            ln = rnd.randrange(1, max_len)
            data = os.pread(fd, ln, off)
            out.append([off, ln, len(data), hashlib.sha256(data).hexdigest()])
    finally:
        os.close(fd)
    return out


def write_attempts(path):
    """Every kind of write on an existing file and its directory: errno name per attempt."""
    d = os.path.dirname(path)
    attempts = {
        "open_write": lambda: os.close(os.open(path, os.O_WRONLY)),
        "open_trunc": lambda: os.close(os.open(path, os.O_RDONLY | os.O_TRUNC)),
        "create": lambda: os.close(os.open(os.path.join(d, "new-file"), os.O_CREAT | os.O_WRONLY, 0o644)),
        "mkdir": lambda: os.mkdir(os.path.join(d, "new-dir")),
        "unlink": lambda: os.unlink(path),
        "rename": lambda: os.rename(path, path + ".moved"),
        "chmod": lambda: os.chmod(path, 0o600),
        "chown": lambda: os.chown(path, 1, 1),
        "utime": lambda: os.utime(path, (0, 0)),
        "truncate": lambda: os.truncate(path, 0),
        "symlink": lambda: os.symlink("x", os.path.join(d, "new-link")),
        "link": lambda: os.link(path, os.path.join(d, "new-hardlink")),
        "mknod": lambda: os.mknod(os.path.join(d, "new-fifo"), 0o600 | 0o010000),
        "setxattr": lambda: os.setxattr(path, "user.x", b"1"),
        "removexattr": lambda: os.removexattr(path, "user.x"),
    }
    out = {}
    for name, fn in attempts.items():
        try:
            fn()
            out[name] = "OK"
        except OSError as e:
            out[name] = errno.errorcode.get(e.errno, str(e.errno))
    return out


def statvfs(path):
    s = os.statvfs(path)
    return {"bsize": s.f_bsize, "frsize": s.f_frsize, "blocks": s.f_blocks, "bfree": s.f_bfree,
            "files": s.f_files, "namemax": s.f_namemax, "flag": s.f_flag}


def read_files(directory):
    """Opens and reads every file in a directory (listed first, untimed): count and seconds."""
    import time
    names = os.listdir(directory)
    start = time.perf_counter()
    for n in names:
        with open(os.path.join(directory, n), "rb") as f:
            f.read()
    return {"count": len(names), "seconds": time.perf_counter() - start}


def read_all(path):
    with open(path, "rb") as f:
        return len(f.read())


def lstat_all(directory):
    """lstat of every name in a directory (listed first, untimed): count and seconds."""
    import time
    names = os.listdir(directory)
    start = time.perf_counter()
    for n in names:
        os.lstat(os.path.join(directory, n))
    return {"count": len(names), "seconds": time.perf_counter() - start}


OPS = {
    "lstat": lstat, "scandir": scandir, "readdir": readdir_raw, "listdir": lambda p: sorted(os.listdir(p)),
    "readlink": os.readlink, "getxattr": lambda p, n: os.getxattr(p, n, follow_symlinks=False).decode("latin-1"),
    "getxattr_sized": getxattr_sized, "listxattr": lambda p: sorted(os.listxattr(p, follow_symlinks=False)),
    "listxattr_sized": listxattr_sized, "sha256": sha256, "pread": pread, "random_preads": random_preads,
    "write_attempts": write_attempts, "statvfs": statvfs, "read_all": read_all, "lstat_all": lstat_all, "read_files": read_files,
    "exists": os.path.lexists,
}


def main():
    results = []
    for op, *args in json.loads(sys.argv[1]):
        try:
            results.append({"ok": OPS[op](*args)})
        except OSError as e:
            results.append({"errno": errno.errorcode.get(e.errno, str(e.errno))})
    json.dump(results, sys.stdout)


main()

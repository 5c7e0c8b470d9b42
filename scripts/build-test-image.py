#!/usr/bin/env python3
"""Build the test images offline into an OCI image layout (no docker, no network).

    scripts/build-test-image.py OUT_LAYOUT_DIR [--tag TAG]...   (default: all tags)

Writes OUT_LAYOUT_DIR/{oci-layout,index.json,blobs/sha256/*}; index.json entries carry the
tag in the annotation org.opencontainers.image.ref.name, so `skopeo copy oci:DIR:TAG ...`
works. Running it again rebuilds the named tags and keeps other tags (idempotent).
Output is deterministic: fixed mtimes, fixed owners, PAX tar, gzip with mtime 0.
Prints a JSON summary (per tag: manifest, config, layers with digest/size/diff_id) on stdout.

Tags:
  multilayer  three gzip layers exercising whiteouts, opaque dirs, hardlinks, symlinks,
              setuid, owners, modes, long names, a 3 MiB random file.
              Cmd prints /etc/clip-test/message -> "hello from clip, layer 3".
  demo        one busybox layer; Cmd prints "Hello from a clip container!".
  lazy        multilayer's three layers plus one with device nodes, xattrs and 2 x 24 MiB files.
  large       a busybox layer plus one holding a 128 MiB random file and a small file;
              Cmd prints /data/small.txt.
  zstd        multilayer's first two layers plus a zstd one (the zstd CLI) with a 6 MiB random file, a
              hard link, a symlink and a whiteout; Cmd prints /data/zstd/hello.txt.

Expected final tree of `multilayer` (after applying L1..L3):
  /data/keep/{one,two,three}        from L1
  /data/gone, /data/gonedir         deleted by whiteouts in L2
  /data/opaque/c                    only c: L2 made the dir opaque (a, b from L1 hidden)
  /data/replaced/                   a directory (L1 had a file; L3 whiteout + new dir)
  /data/replaced/inner              "inner file from layer 3\n"
  /data/l2dir/sub/nested.txt        added by L3 into a dir created by L2
  /etc/clip-test/message            "hello from clip, layer 3\n"
  see layer2() for the rest.
Note on tar order: where a layer whiteouts a path and recreates it, the whiteout entry
comes first (containerd's appliers process entries in order).
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

MTIME = 1700000000  # fixed mtime for every entry (2023-11-14T22:13:20Z)
BUSYBOX = "/bin/busybox"
APPLETS = [
    "sh", "ash", "cat", "ls", "echo", "find", "stat", "sha256sum", "md5sum", "head", "tail",
    "wc", "readlink", "id", "mkdir", "rm", "cp", "mv", "ln", "touch", "sleep", "true",
    "false", "env", "grep", "sed", "awk", "test", "[", "uname", "ps", "mount", "du", "df",
    "tr", "sort", "uniq", "xargs", "dd", "od", "hexdump", "chmod", "chown", "printf", "pwd",
    "date", "basename", "dirname", "cut", "diff", "cmp", "tar", "gzip", "hostname",
    "kill", "seq", "tee", "realpath",
]
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"


class Layer:
    """Accumulates tar entries in the order added (parents must be added before children)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, type_, mode, uid, gid):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.uid, ti.gid = type_, mode, uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = MTIME
        return ti

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.tar.addfile(self._info(name.rstrip("/") + "/", tarfile.DIRTYPE, mode, uid, gid))

    def file(self, name, data=b"", mode=0o644, uid=0, gid=0):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))

    def device(self, name, kind, major, minor, mode=0o666, uid=0, gid=0):
        """A char ("c"), block ("b") device or fifo ("p")."""
        type_ = {"c": tarfile.CHRTYPE, "b": tarfile.BLKTYPE, "p": tarfile.FIFOTYPE}[kind]
        ti = self._info(name, type_, mode, uid, gid)
        ti.devmajor, ti.devminor = major, minor
        self.tar.addfile(ti)

    def file_with_xattrs(self, name, data, xattrs, mode=0o644):
        """A regular file carrying extended attributes as PAX SCHILY.xattr.* records."""
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode, 0, 0)
        ti.size = len(data)
        ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in xattrs.items()}
        self.tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target, uid=0, gid=0):
        ti = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid)
        ti.linkname = target
        self.tar.addfile(ti)

    def hardlink(self, name, target, mode=0o644, uid=0, gid=0):
        # target is a path in the same layer, relative to the root (no leading slash).
        ti = self._info(name, tarfile.LNKTYPE, mode, uid, gid)
        ti.linkname = target
        self.tar.addfile(ti)

    def whiteout(self, path):
        d, base = os.path.split(path.rstrip("/"))
        self.file(os.path.join(d, ".wh." + base), mode=0o600)

    def opaque(self, dirpath):
        self.file(dirpath.rstrip("/") + "/.wh..wh..opq", mode=0o600)

    def finish(self):
        """Return (uncompressed tar bytes, gzip bytes)."""
        self.tar.close()
        raw = self.buf.getvalue()
        gz = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=6) as g:
            g.write(raw)
        return raw, gz.getvalue()


def busybox_base(layer):
    """Root dirs, /bin/busybox with applet symlinks, passwd/group."""
    with open(BUSYBOX, "rb") as f:
        bb = f.read()
    for d in ["bin", "etc", "usr", "usr/bin", "var"]:
        layer.dir(d)
    layer.dir("root", mode=0o700)
    for d in ["proc", "sys", "dev"]:
        layer.dir(d, mode=0o555 if d != "dev" else 0o755)
    layer.dir("tmp", mode=0o1777)
    layer.file("bin/busybox", bb, mode=0o755)
    for a in sorted(set(APPLETS)):
        layer.symlink("bin/" + a, "busybox")
    layer.file("etc/passwd", PASSWD)
    layer.file("etc/group", GROUP)


def layer1():
    l = Layer()
    busybox_base(l)
    l.dir("etc/clip-test")
    l.file("etc/clip-test/message", "hello from clip\n")
    l.dir("data")
    l.dir("data/keep")
    for n in ["one", "two", "three"]:
        l.file("data/keep/" + n, "keep %s\n" % n)
    l.dir("data/opaque")
    l.file("data/opaque/a", "a from layer 1\n")
    l.file("data/opaque/b", "b from layer 1\n")
    l.file("data/gone", "this file is deleted by layer 2\n")
    l.dir("data/gonedir")
    l.file("data/gonedir/child1", "child 1\n")
    l.dir("data/gonedir/sub")
    l.file("data/gonedir/sub/child2", "child 2\n")
    l.file("data/replaced", "a file in layer 1, a directory from layer 3\n")
    return l


LONG_NAME = "data/long/" + "a-very-long-file-name-" * 6 + "end.txt"  # > 100 chars


def layer2():
    l = Layer()
    l.dir("data")
    l.whiteout("data/gone")
    l.whiteout("data/gonedir")
    l.dir("data/opaque")
    l.opaque("data/opaque")
    l.file("data/opaque/c", "c from layer 2\n")
    l.dir("data/links")
    l.file("data/links/orig", "hardlinked content\n")
    l.hardlink("data/links/hard", "data/links/orig")
    l.symlink("data/links/rel", "orig")
    l.symlink("data/links/abs", "/etc/clip-test/message")
    l.dir("usr")
    l.dir("usr/bin")
    l.file("usr/bin/suid-tool", "#!/bin/sh\necho suid-tool\n", mode=0o4755)
    l.dir("data/owned")
    l.file("data/owned/by-1234", "owned by 1234:5678\n", uid=1234, gid=5678)
    l.file("data/owned/by-nobody", "owned by 65534:65534\n", uid=65534, gid=65534)
    l.dir("data/perm")
    l.file("data/perm/private", "mode 0600\n", mode=0o600)
    l.file("data/perm/readonly", "mode 0444\n", mode=0o444)
    l.file("data/perm/empty", b"")
    l.dir("data/secret", mode=0o700, uid=1000, gid=1000)
    l.file("data/secret/inside", "in a 0700 dir of uid 1000\n", mode=0o600, uid=1000, gid=1000)
    l.dir("data/l2dir")
    l.file("data/l2dir/from-l2", "created by layer 2\n")
    l.dir("data/long")
    l.file(LONG_NAME, "long name\n")
    # 3 MiB of deterministic pseudo-random bytes (SHAKE-256 of a fixed seed).
    l.file("data/random.bin", hashlib.shake_256(b"clip-test-seed").digest(3 * 1024 * 1024))
    return l


def layer3():
    l = Layer()
    l.dir("etc")
    l.dir("etc/clip-test")
    l.file("etc/clip-test/message", "hello from clip, layer 3\n")
    l.dir("data")
    l.dir("data/l2dir")
    l.dir("data/l2dir/sub")
    l.file("data/l2dir/sub/nested.txt", "nested file from layer 3\n")
    # Replace the L1 file data/replaced by a directory: whiteout first, then the new dir.
    l.whiteout("data/replaced")
    l.dir("data/replaced")
    l.file("data/replaced/inner", "inner file from layer 3\n")
    return l


def layer4_lazy():
    """Device nodes, xattrs and large files, for the lazy-loading tests."""
    l = Layer()
    l.dir("data")
    l.dir("data/devices")
    l.device("data/devices/null", "c", 1, 3)
    l.device("data/devices/loop7", "b", 7, 7, mode=0o660)
    l.device("data/devices/pipe", "p", 0, 0, mode=0o644)
    l.dir("data/xattrs")
    l.file_with_xattrs("data/xattrs/tagged", "has xattrs\n", {"user.clip": "hello", "user.empty": ""})
    l.dir("data/large")
    # 24 MiB incompressible (stored deflate blocks) and 24 MiB of compressible text.
    l.file("data/large/random.bin", hashlib.shake_256(b"clip-lazy-random").digest(24 * 1024 * 1024))
    line = b"clip lazy loading test line with some repetitive text 0123456789\n"
    l.file("data/large/text.txt", line * (24 * 1024 * 1024 // len(line)))
    return l


LARGE_MIB = 128


def large_layer():
    """One big file a container never reads, and one small file it does."""
    l = Layer()
    l.dir("data")
    l.file("data/small.txt", "small file read by the container\n")
    l.file("data/big.bin", hashlib.shake_256(b"clip-large").digest(LARGE_MIB * 1024 * 1024))
    return l


def zstd_layer():
    l = Layer()
    l.dir("data/zstd")
    l.file("data/zstd/hello.txt", "hello from a zstd layer\n")
    l.file("data/zstd/random.bin", hashlib.shake_256(b"clip-zstd").digest(6 * 1024 * 1024))
    l.hardlink("data/zstd/hard", "data/zstd/hello.txt")
    l.symlink("data/zstd/link", "hello.txt")
    l.whiteout("data/keep/one")
    return l


def demo_layer():
    l = Layer()
    busybox_base(l)
    return l


IMAGES = {
    "multilayer": {
        "layers": [layer1, layer2, layer3],
        "cmd": ["/bin/sh", "-c", "cat /etc/clip-test/message"],
    },
    "demo": {
        "layers": [demo_layer],
        "cmd": ["/bin/echo", "Hello from a clip container!"],
    },
    "lazy": {
        "layers": [layer1, layer2, layer3, layer4_lazy],
        "cmd": ["/bin/sh", "-c", "cat /etc/clip-test/message"],
    },
    "large": {
        "layers": [demo_layer, large_layer],
        "cmd": ["/bin/cat", "/data/small.txt"],
    },
    "zstd": {
        "layers": [layer1, layer2, zstd_layer],
        "zstd": {2},
        "cmd": ["/bin/cat", "/data/zstd/hello.txt"],
    },
}


def canon(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class LayoutWriter:
    def __init__(self, out):
        self.out = out
        self.blobdir = os.path.join(out, "blobs", "sha256")
        os.makedirs(self.blobdir, exist_ok=True)

    def blob(self, data, media_type):
        digest = hashlib.sha256(data).hexdigest()
        path = os.path.join(self.blobdir, digest)
        if not (os.path.exists(path) and os.path.getsize(path) == len(data)):
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}

    def build(self, tag):
        spec = IMAGES[tag]
        layers, diff_ids, summary = [], [], []
        for i, fn in enumerate(spec["layers"]):
            raw, gz = fn().finish()
            if i in spec.get("zstd", ()):
                zst = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw, stdout=subprocess.PIPE, check=True).stdout
                desc = self.blob(zst, MT_LAYER_ZSTD)
            else:
                desc = self.blob(gz, MT_LAYER)
            diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
            layers.append(desc)
            diff_ids.append(diff_id)
            summary.append(dict(desc, diff_id=diff_id, uncompressed_size=len(raw)))
        config = {
            "architecture": "amd64",
            "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": spec["cmd"],
                "WorkingDir": "/",
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": "2023-11-14T22:13:20Z", "created_by": "build-test-image.py %s layer %d" % (tag, i + 1)}
                for i in range(len(layers))
            ],
        }
        cdesc = self.blob(canon(config), MT_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cdesc, "layers": layers}
        mdesc = self.blob(canon(manifest), MT_MANIFEST)
        mdesc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        mdesc["platform"] = {"architecture": "amd64", "os": "linux"}
        return mdesc, {"manifest": mdesc["digest"], "config": cdesc["digest"], "layers": summary}

    def write_index(self, new_descs):
        idx_path = os.path.join(self.out, "index.json")
        manifests = []
        if os.path.exists(idx_path):
            with open(idx_path) as f:
                manifests = json.load(f).get("manifests", [])
        new_tags = {d["annotations"]["org.opencontainers.image.ref.name"] for d in new_descs}
        manifests = [m for m in manifests
                     if m.get("annotations", {}).get("org.opencontainers.image.ref.name") not in new_tags]
        manifests += new_descs
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
        with open(idx_path + ".tmp", "w") as f:
            json.dump(index, f, indent=2)
        os.replace(idx_path + ".tmp", idx_path)
        with open(os.path.join(self.out, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="OCI layout directory to create or update")
    ap.add_argument("--tag", choices=sorted(IMAGES) + ["all"], action="append",
                    help="tag to build; repeat for several (default: all)")
    args = ap.parse_args()
    if not os.path.exists(BUSYBOX):
        sys.exit("build-test-image.py: %s missing (apt-get install busybox-static)" % BUSYBOX)
    w = LayoutWriter(args.out)
    wanted = args.tag or ["all"]
    tags = sorted(IMAGES) if "all" in wanted else sorted(set(wanted))
    descs, summary = [], {}
    for t in tags:
        d, s = w.build(t)
        descs.append(d)
        summary[t] = s
    w.write_index(descs)
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

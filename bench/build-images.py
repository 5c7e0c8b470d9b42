#!/usr/bin/env python3
"""Build the benchmark images offline into an OCI image layout, cached across runs.

    bench/build-images.py CACHE_DIR [--tag TAG]...      (default: all tags)

Writes CACHE_DIR/layout (an OCI layout; push a tag with scripts/push-test-image.sh) and prints a
JSON summary per tag (manifest, layers with digest/size/diff_id/uncompressed_size, cmd) on stdout.
A tag already built by this version of the script (CACHE_DIR/summary-TAG.json, blobs present) is
not built again. Building needs, once: debootstrap and Debian's package registry (the Debian
rootfs), npm and its registry (the Node app's dependencies). Everything else is offline.

Tags:
  python      Debian bookworm minbase + python3 (debootstrap), and an app layer whose script
              imports a dozen stdlib modules and prints "ready".
  large       a busybox layer plus one with a 1 GiB random file and a small file; prints the
              small file (the 1 GiB file is never read).
  node        the Debian rootfs of `python`, /usr/local/bin/node (this machine's), and an app
              layer with express, lodash and semver from npm; prints "ready".
  smallfiles  a busybox layer plus one with 10,000 files of 1-4 KiB in 100 directories.
  layers1, layers10, layers50
              the first 1, 10 and 50 of: a busybox layer and 49 small layers of 20 files each.
"""
import argparse
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

VERSION = 2  # bump when an image's content changes
HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "build_test_image", os.path.join(HERE, "..", "scripts", "build-test-image.py"))
bti = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bti)

MTIME = bti.MTIME
LARGE_BYTES = 1 << 30
PY_SCRIPT = """import argparse, asyncio, collections, csv, datetime, decimal, email.message, hashlib
import http.client, json, logging, pathlib, sqlite3, subprocess, urllib.request, xml.etree.ElementTree
print("ready", len(dir(asyncio)) > 0, flush=True)
"""
NODE_DEPS = ["express@5.1.0", "lodash@4.17.21", "semver@7.7.2"]
NODE_SCRIPT = """const express = require('express');
const _ = require('lodash');
const semver = require('semver');
const app = express();
app.get('/', (_req, res) => res.send('hi'));
console.log('ready', _.camelCase('clip bench'), semver.valid('1.2.3'), typeof app.listen);
"""


def run(cmd, **kw):
    subprocess.run(cmd, check=True, **kw)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return "sha256:" + h.hexdigest()
            h.update(b)


class Builder:
    def __init__(self, cache):
        self.cache = cache
        self.layout = os.path.join(cache, "layout")
        self.work = os.path.join(cache, "work")
        os.makedirs(self.work, exist_ok=True)
        self.writer = bti.LayoutWriter(self.layout)
        self._layers = {}

    # --- layers -------------------------------------------------------------------------------
    def layer_from_tar(self, name, write_tar):
        """Cache a gzip layer built by write_tar(tarfile); returns the layer summary."""
        if name in self._layers:
            return self._layers[name]
        meta = os.path.join(self.work, "layer-%s.v%d.json" % (name, VERSION))
        if os.path.exists(meta):
            with open(meta) as f:
                s = json.load(f)
            if os.path.exists(os.path.join(self.writer.blobdir, s["digest"].split(":")[1])):
                self._layers[name] = s
                return s
        raw = os.path.join(self.work, name + ".tar")
        with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as t:
            write_tar(t)
        gz = raw + ".gz"
        with open(gz, "wb") as out:
            run(["gzip", "-n", "-6", "-c", raw], stdout=out)
        digest = sha256_file(gz)
        s = {"mediaType": bti.MT_LAYER, "digest": digest, "size": os.path.getsize(gz),
             "diff_id": sha256_file(raw), "uncompressed_size": os.path.getsize(raw)}
        os.replace(gz, os.path.join(self.writer.blobdir, digest.split(":")[1]))
        os.unlink(raw)
        with open(meta, "w") as f:
            json.dump(s, f)
        self._layers[name] = s
        return s

    def layer_from_mem(self, name, layer):
        """A bti.Layer built in memory."""
        def write(t):
            layer.tar.close()
            buf = layer.buf.getvalue()
            with tarfile.open(fileobj=io.BytesIO(buf)) as src:
                for m in src.getmembers():
                    t.addfile(m, src.extractfile(m) if m.isreg() else None)
        return self.layer_from_tar(name, write)

    def debian_python(self):
        def write(t):
            root = self.debootstrap()
            for d, dirs, files in os.walk(root):
                dirs.sort()
                rel = os.path.relpath(d, root)
                for n in [*dirs, *sorted(files)]:
                    p = os.path.join(d, n)
                    arc = n if rel == "." else os.path.join(rel, n)
                    if rel in ("proc", "sys", "dev") or arc.startswith(("proc/", "sys/", "dev/")):
                        continue
                    # like Debian's own images: no downloaded packages, no package lists
                    if arc.startswith(("var/cache/apt/archives/", "var/lib/apt/lists/")) and not os.path.isdir(p):
                        continue
                    t.add(p, arcname=arc, recursive=False)
        return self.layer_from_tar("debian-python", write)

    def debootstrap(self):
        root = os.path.join(self.cache, "debian-python")
        if os.path.exists(os.path.join(root, ".complete")):
            return root
        tmp = root + ".tmp"
        if not os.path.exists(os.path.join(tmp, "usr/bin/python3")):
            shutil.rmtree(tmp, ignore_errors=True)
            run(["debootstrap", "--variant=minbase", "--include=python3", "bookworm", tmp,
                 "http://deb.debian.org/debian"], stdout=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp, root)
        open(os.path.join(root, ".complete"), "w").close()
        return root

    def node_modules(self):
        app = os.path.join(self.cache, "node-app")
        if not os.path.exists(os.path.join(app, ".complete")):
            os.makedirs(app, exist_ok=True)
            with open(os.path.join(app, "package.json"), "w") as f:
                json.dump({"name": "clip-bench-app", "private": True}, f)
            run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--prefix", app, *NODE_DEPS],
                stdout=sys.stderr)
            open(os.path.join(app, ".complete"), "w").close()
        return app

    def busybox(self):
        l = bti.Layer()
        bti.busybox_base(l)
        return self.layer_from_mem("busybox", l)

    # --- images -------------------------------------------------------------------------------
    def image(self, tag, layers, cmd):
        config = {
            "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                       "Cmd": cmd, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "bench %s layer %d" % (tag, i + 1)}
                        for i in range(len(layers))],
        }
        cdesc = self.writer.blob(bti.canon(config), bti.MT_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": bti.MT_MANIFEST, "config": cdesc,
                    "layers": [{k: l[k] for k in ("mediaType", "digest", "size")} for l in layers]}
        mdesc = self.writer.blob(bti.canon(manifest), bti.MT_MANIFEST)
        mdesc["annotations"] = {"org.opencontainers.image.ref.name": tag}
        mdesc["platform"] = {"architecture": "amd64", "os": "linux"}
        return mdesc, {"manifest": mdesc["digest"], "config": cdesc["digest"], "layers": layers, "cmd": cmd}

    def build(self, tag):
        if tag == "python":
            app = bti.Layer()
            app.dir("app")
            app.file("app/start.py", PY_SCRIPT)
            return self.image(tag, [self.debian_python(), self.layer_from_mem("python-app", app)],
                              ["/usr/bin/python3", "/app/start.py"])
        if tag == "large":
            def write(t):
                t.addfile(self._dir("data"))
                small = b"small file read by the container\n"
                ti = self._file("data/small.txt", len(small))
                t.addfile(ti, io.BytesIO(small))
                ti = self._file("data/big.bin", LARGE_BYTES)
                t.addfile(ti, ShakeReader(b"clip-bench-large", LARGE_BYTES))
            return self.image(tag, [self.busybox(), self.layer_from_tar("large-1g", write)],
                              ["/bin/cat", "/data/small.txt"])
        if tag == "node":
            def write_node(t):
                t.addfile(self._dir("usr/local/bin"))
                t.add("/usr/bin/node", arcname="usr/local/bin/node")
            def write_app(t):
                app = self.node_modules()
                t.addfile(self._dir("app"))
                ti = self._file("app/index.js", len(NODE_SCRIPT))
                t.addfile(ti, io.BytesIO(NODE_SCRIPT.encode()))
                base = os.path.join(app, "node_modules")
                for d, dirs, files in os.walk(base):
                    dirs.sort()
                    for n in [*dirs, *sorted(files)]:
                        p = os.path.join(d, n)
                        ti = t.gettarinfo(p, arcname=os.path.join("app", os.path.relpath(p, app)))
                        ti.uid = ti.gid = 0
                        ti.uname = ti.gname = ""
                        ti.mtime = MTIME
                        if ti.isreg():
                            with open(p, "rb") as f:
                                t.addfile(ti, f)
                        else:
                            t.addfile(ti)
            return self.image(tag, [self.debian_python(), self.layer_from_tar("node-bin", write_node),
                                    self.layer_from_tar("node-app", write_app)],
                              ["/usr/local/bin/node", "/app/index.js"])
        if tag == "smallfiles":
            def write(t):
                t.addfile(self._dir("data"))
                t.addfile(self._dir("data/small"))
                for d in range(100):
                    t.addfile(self._dir("data/small/d%02d" % d))
                    for i in range(100):
                        n = d * 100 + i
                        data = hashlib.shake_256(b"small-%d" % n).digest(1024 + (n * 37) % 3072)
                        t.addfile(self._file("data/small/d%02d/f%05d" % (d, n), len(data)), io.BytesIO(data))
            return self.image(tag, [self.busybox(), self.layer_from_tar("smallfiles", write)],
                              ["/bin/ls", "/data/small/d00"])
        if tag.startswith("layers"):
            count = int(tag[len("layers"):])
            layers = [self.busybox()]
            for k in range(1, count):
                def write(t, k=k):
                    t.addfile(self._dir("data"))
                    t.addfile(self._dir("data/l%02d" % k))
                    for i in range(20):
                        data = hashlib.shake_256(b"layer-%d-%d" % (k, i)).digest(2048)
                        t.addfile(self._file("data/l%02d/f%02d" % (k, i), len(data)), io.BytesIO(data))
                layers.append(self.layer_from_tar("small-%02d" % k, write))
            return self.image(tag, layers, ["/bin/ls", "/data"])
        raise SystemExit("unknown tag " + tag)

    @staticmethod
    def _dir(name):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, MTIME
        return ti

    @staticmethod
    def _file(name, size):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.size = tarfile.REGTYPE, 0o644, MTIME, size
        return ti


class ShakeReader:
    """A file-like of n deterministic pseudo-random bytes (SHAKE-256 of seed + block number, 1 MiB blocks)."""

    def __init__(self, seed, n):
        self.seed, self.left, self.block, self.buf, self.pos = seed, n, 0, b"", 0

    def read(self, size=-1):
        size = self.left if size < 0 else min(size, self.left)
        out = []
        want = size
        while want > 0:
            if self.pos == len(self.buf):
                self.buf, self.pos = hashlib.shake_256(self.seed + b"%d" % self.block).digest(1 << 20), 0
                self.block += 1
            take = min(want, len(self.buf) - self.pos)
            out.append(self.buf[self.pos:self.pos + take])
            self.pos += take
            want -= take
        self.left -= size
        return b"".join(out)


ALL = ["python", "large", "node", "smallfiles", "layers1", "layers10", "layers50"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache")
    ap.add_argument("--tag", choices=ALL, action="append")
    args = ap.parse_args()
    b = Builder(os.path.abspath(args.cache))
    descs, summary = [], {}
    for tag in args.tag or ALL:
        cached = os.path.join(b.cache, "summary-%s.v%d.json" % (tag, VERSION))
        if os.path.exists(cached):
            with open(cached) as f:
                d, s = json.load(f)
            if all(os.path.exists(os.path.join(b.writer.blobdir, l["digest"].split(":")[1])) for l in s["layers"]):
                descs.append(d)
                summary[tag] = s
                continue
        print("build-images: building %s" % tag, file=sys.stderr)
        d, s = b.build(tag)
        with open(cached, "w") as f:
            json.dump([d, s], f)
        descs.append(d)
        summary[tag] = s
    b.writer.write_index(descs)
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write outport's sample image: a small, reproducible OCI image layout.

    python3 examples/make-sample-image.py [OUTDIR]     # default: examples/sample-image
    python3 examples/make-sample-image.py --check DIR  # exit 1 if DIR is not what OUTDIR would get

The image is a multi-platform index (linux/amd64 and linux/arm64/v8). Each
platform's manifest has two gzip layers:

  1. a base layer shared by both platforms: /etc/os-release, a symlink
     /etc/sample-release -> os-release, the 0755 directory /usr/share/sample/
     holding README and NOTES, and the empty 0755 directory /var/empty/;
  2. a per-platform layer: /app/platform.txt naming the platform, the
     executable shell script /app/hello, a hard link /app/hi to it, and a
     whiteout /usr/share/sample/.wh.README that deletes the base layer's README.

Every byte is determined by this script alone (standard library only): tar
entries in sorted order with a fixed mtime, owner root:root (0:0) and PAX
format; gzip streams with mtime 0, no file name and a fixed compression level;
JSON written compactly with keys in a fixed order. Running it twice gives the
same blobs, and --check tells whether a checked-in copy is current.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import zlib

# 2024-01-01T00:00:00Z
MTIME = 1704067200
CREATED = "2024-01-01T00:00:00Z"
GZIP_LEVEL = 9

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

IMAGE_NAME = "docker.io/outport/sample:latest"
IMAGE_TAG = "latest"

PLATFORMS = [
    {"architecture": "amd64", "os": "linux"},
    {"architecture": "arm64", "os": "linux", "variant": "v8"},
]

OS_RELEASE = b"""NAME="outport sample"
ID=outport-sample
VERSION_ID=1
PRETTY_NAME="outport sample image"
HOME_URL="https://example.invalid/outport"
"""

README = b"""This file is in the base layer of outport's sample image.
The per-platform layer deletes it again with a whiteout (.wh.README),
so an unpacked image must not contain /usr/share/sample/README.
"""

NOTES = b"""This file is in the base layer of outport's sample image and stays.
"""

HELLO = b"""#!/bin/sh
echo "hello from the outport sample on $(cat /app/platform.txt)"
"""


# --- tar ------------------------------------------------------------------


def _entry(name, kind, mode, data=b"", target=""):
    return {"name": name, "kind": kind, "mode": mode, "data": data, "target": target}


def d(name):
    return _entry(name, tarfile.DIRTYPE, 0o755)


def f(name, data, mode=0o644):
    return _entry(name, tarfile.REGTYPE, mode, data=data)


def symlink(name, target):
    return _entry(name, tarfile.SYMTYPE, 0o777, target=target)


def hardlink(name, target):
    return _entry(name, tarfile.LNKTYPE, 0o755, target=target)


def make_tar(entries):
    """An uncompressed tar of ENTRIES, sorted by name, with fixed metadata."""
    names = [e["name"] for e in entries]
    assert len(set(names)) == len(names), "duplicate tar entry"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in sorted(entries, key=lambda e: e["name"]):
            info = tarfile.TarInfo(e["name"])
            info.type = e["kind"]
            info.mode = e["mode"]
            info.mtime = MTIME
            info.uid = 0
            info.gid = 0
            info.uname = "root"
            info.gname = "root"
            if e["kind"] in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = e["target"]
            if e["kind"] == tarfile.REGTYPE:
                info.size = len(e["data"])
                tar.addfile(info, io.BytesIO(e["data"]))
            else:
                info.size = 0
                tar.addfile(info)
    return buf.getvalue()


def gzip_bytes(data):
    buf = io.BytesIO()
    with gzip.GzipFile(
        fileobj=buf, mode="wb", compresslevel=GZIP_LEVEL, mtime=0, filename=""
    ) as gz:
        gz.write(data)
    return buf.getvalue()


# --- blobs and JSON -------------------------------------------------------


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layout:
    """The files of an OCI image layout, kept in memory: path -> bytes."""

    def __init__(self):
        self.files = {}

    def blob(self, media_type, data, **extra):
        """Store DATA as a blob and return its descriptor (fixed key order)."""
        digest = sha256(data)
        self.files["blobs/sha256/" + digest.split(":", 1)[1]] = data
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        desc.update(extra)
        return desc


def platform_string(p):
    s = p["os"] + "/" + p["architecture"]
    if "variant" in p:
        s += "/" + p["variant"]
    return s


def base_layer():
    return make_tar(
        [
            d("etc/"),
            f("etc/os-release", OS_RELEASE),
            symlink("etc/sample-release", "os-release"),
            d("usr/"),
            d("usr/share/"),
            d("usr/share/sample/"),
            f("usr/share/sample/NOTES", NOTES),
            f("usr/share/sample/README", README),
            d("var/"),
            d("var/empty/"),
        ]
    )


def platform_layer(platform):
    return make_tar(
        [
            d("app/"),
            f("app/hello", HELLO, mode=0o755),
            hardlink("app/hi", "app/hello"),
            f("app/platform.txt", (platform_string(platform) + "\n").encode()),
            d("usr/"),
            d("usr/share/"),
            d("usr/share/sample/"),
            f("usr/share/sample/.wh.README", b""),
        ]
    )


def build():
    """Return the sample layout as {relative path: bytes}."""
    layout = Layout()
    base_tar = base_layer()
    base_gz = gzip_bytes(base_tar)

    manifest_descs = []
    for platform in PLATFORMS:
        app_tar = platform_layer(platform)
        app_gz = gzip_bytes(app_tar)
        layers = [
            layout.blob(MT_LAYER_GZIP, base_gz),
            layout.blob(MT_LAYER_GZIP, app_gz),
        ]
        config = {
            "created": CREATED,
            "architecture": platform["architecture"],
        }
        if "variant" in platform:
            config["variant"] = platform["variant"]
        config.update(
            {
                "os": platform["os"],
                "config": {
                    "Env": [
                        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                    ],
                    "Cmd": ["/app/hello"],
                    "WorkingDir": "/app",
                    "Labels": {
                        "org.opencontainers.image.title": "outport sample",
                        "org.opencontainers.image.description": "the sample image of outport's examples and tests",
                    },
                },
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [sha256(base_tar), sha256(app_tar)],
                },
                "history": [
                    {
                        "created": CREATED,
                        "created_by": "make-sample-image.py: base layer (/etc, /usr/share/sample, /var/empty)",
                    },
                    {
                        "created": CREATED,
                        "created_by": "make-sample-image.py: "
                        + platform_string(platform)
                        + " layer (/app, whiteout of /usr/share/sample/README)",
                    },
                ],
            }
        )
        config_desc = layout.blob(MT_CONFIG, dumps(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config_desc,
            "layers": layers,
        }
        manifest_descs.append(
            layout.blob(MT_MANIFEST, dumps(manifest), platform=dict(platform))
        )

    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifest_descs}
    index_desc = layout.blob(
        MT_INDEX,
        dumps(index),
        annotations={
            "io.containerd.image.name": IMAGE_NAME,
            "org.opencontainers.image.ref.name": IMAGE_TAG,
        },
    )
    layout.files["oci-layout"] = dumps({"imageLayoutVersion": "1.0.0"})
    layout.files["index.json"] = dumps(
        {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": [index_desc]}
    )
    return layout.files


# --- write / check --------------------------------------------------------


def existing_files(root):
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            with open(path, "rb") as fh:
                found[rel] = fh.read()
    return found


def write(outdir, files):
    blobdir = os.path.join(outdir, "blobs", "sha256")
    os.makedirs(blobdir, exist_ok=True)
    # Drop blobs of an older version of the sample.
    for name in sorted(os.listdir(blobdir)):
        if "blobs/sha256/" + name not in files:
            os.remove(os.path.join(blobdir, name))
    for rel, data in sorted(files.items()):
        path = os.path.join(outdir, *rel.split("/"))
        tmp = path + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    total = sum(len(v) for v in files.values())
    print(f"wrote {outdir}: {len(files)} files, {total} bytes")


def check(dirpath, files):
    if not os.path.isdir(dirpath):
        print(f"{dirpath}: not a directory", file=sys.stderr)
        return 1
    found = existing_files(dirpath)
    problems = []
    for rel in sorted(set(files) | set(found)):
        if rel not in found:
            problems.append(f"missing: {rel}")
        elif rel not in files:
            problems.append(f"unexpected: {rel}")
        elif found[rel] != files[rel]:
            problems.append(f"differs: {rel}")
    if problems:
        for p in problems:
            print(f"{dirpath}: {p}", file=sys.stderr)
        print(
            f"{dirpath} is not what make-sample-image.py writes "
            f"(python {sys.version.split()[0]}, zlib {zlib.ZLIB_RUNTIME_VERSION}); "
            "regenerate it with: python3 examples/make-sample-image.py",
            file=sys.stderr,
        )
        return 1
    print(f"{dirpath}: up to date ({len(files)} files)")
    return 0


def main(argv=None):
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample-image")
    parser = argparse.ArgumentParser(
        description="Write outport's sample OCI image layout, reproducibly."
    )
    parser.add_argument(
        "outdir",
        nargs="?",
        default=default,
        help="where to write the layout (default: examples/sample-image)",
    )
    parser.add_argument(
        "--check",
        metavar="DIR",
        help="do not write; exit 1 if DIR differs from what would be written",
    )
    args = parser.parse_args(argv)
    files = build()
    if args.check is not None:
        return check(args.check, files)
    write(args.outdir, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())

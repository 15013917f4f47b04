"""An outport exporter written in Python: a `skopeo inspect`-like report.

For each image manifest of the image (one per platform; attestation
manifests left out) it writes the fields `skopeo inspect` shows for that
platform (`Digest`, `Created`, `Labels`, `Architecture`, `Os`, `Layers`,
`Env`), plus `Platform`, `Variant` (when there is one), `ManifestDigest`
and `LayersData` (media type, digest, size and annotations of each layer),
as one JSON list in the `dest` file.

Built into a component by `componentize-py` against outport's WIT
(`wit/`, world `exporter`); the `wit_world` package it imports is generated
by componentize-py at build time. See README.md.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import files, host, image, preopens
from wit_world.imports import wasi_filesystem_types as fs
from wit_world.imports.outport_exporter_types import (
    ComponentInfo,
    Error_InvalidImage,
    Error_InvalidOption,
    Error_Io,
    OptionInfo,
    OutputKind,
    ResponseEntry,
)

NAME = "inspect"
VERSION = "0.1.0"

INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)

OPTIONS = [
    OptionInfo(
        key="platform",
        help="only the image for OS/ARCH[/VARIANT] (linux/arm64 matches linux/arm64/v8)",
        default_value=None,
        repeatable=False,
    ),
    OptionInfo(
        key="pretty",
        help="true: indented JSON; false: one line",
        default_value="true",
        repeatable=False,
    ),
    OptionInfo(
        key="mode",
        help="permission bits of the report file, in octal (e.g. 0644)",
        default_value=None,
        repeatable=False,
    ),
]


def invalid(message):
    """An `invalid-option` error naming this exporter."""
    return Err(Error_InvalidOption(f"{NAME}: {message}"))


def parse_options(options):
    """The options as a dict, checked: known keys, each once, valid values."""
    known = {o.key for o in OPTIONS}
    parsed = {}
    for key, value in options:
        if key not in known:
            raise invalid(f"unknown option {key!r} (known: {', '.join(sorted(known))})")
        if key in parsed:
            raise invalid(f"option {key!r} is given more than once")
        parsed[key] = value
    if parsed.get("pretty", "true") not in ("true", "false"):
        raise invalid(f"pretty={parsed['pretty']!r}: expected true or false")
    if "platform" in parsed:
        parts = parsed["platform"].split("/")
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise invalid(f"platform={parsed['platform']!r}: expected OS/ARCH[/VARIANT]")
    if "mode" in parsed:
        mode = parsed["mode"]
        if not mode or len(mode) > 4 or any(c not in "01234567" for c in mode):
            raise invalid(f"mode={mode!r}: expected octal permission bits such as 0644")
    return parsed


def blob_json(digest):
    """A small JSON blob of the image (index, manifest, config), parsed."""
    data = image.get_blob(digest).bytes()
    try:
        return json.loads(data)
    except ValueError as e:
        raise Err(Error_InvalidImage(f"{digest} is not JSON: {e}"))


def platform_string(platform):
    """`os/arch[/variant]`."""
    parts = [platform.get("os", ""), platform.get("architecture", "")]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)


def image_manifests(descriptor):
    """(manifest descriptor as JSON, platform or None) of each image manifest
    reachable from `descriptor`, in index order; attestations left out."""
    media_type = descriptor["mediaType"]
    if media_type in MANIFEST_TYPES:
        return [(descriptor, descriptor.get("platform"))]
    if media_type not in INDEX_TYPES:
        return []
    found = []
    for entry in blob_json(descriptor["digest"]).get("manifests", []):
        annotations = entry.get("annotations") or {}
        if annotations.get("vnd.docker.reference.type") == "attestation-manifest":
            continue
        found.extend(image_manifests(entry))
    return found


def report(root_digest, descriptor, platform):
    """What `skopeo inspect` shows for one platform's image, and more."""
    manifest = blob_json(descriptor["digest"])
    config = blob_json(manifest["config"]["digest"])
    if not platform:
        platform = {k: config[k] for k in ("os", "architecture", "variant") if k in config}
    layers = manifest.get("layers", [])
    entry = {
        "Platform": platform_string(platform),
        "Digest": root_digest,
        "ManifestDigest": descriptor["digest"],
        "Created": config.get("created"),
        "Labels": (config.get("config") or {}).get("Labels"),
        "Architecture": platform.get("architecture", ""),
        "Os": platform.get("os", ""),
        "Variant": platform.get("variant"),
        "Layers": [layer["digest"] for layer in layers],
        "LayersData": [
            {
                "MIMEType": layer["mediaType"],
                "Digest": layer["digest"],
                "Size": layer["size"],
                "Annotations": layer.get("annotations"),
            }
            for layer in layers
        ],
        "Env": (config.get("config") or {}).get("Env"),
    }
    if not entry["Variant"]:
        del entry["Variant"]
    return entry


def matches(wanted, platform):
    """Whether `platform` (os/arch[/variant]) is the `wanted` one; a wanted
    platform without a variant matches any variant."""
    want = wanted.split("/")
    have = platform.split("/")
    return want == have[: len(want)]


def open_destination(destination):
    """The report file, created in the granted directory."""
    if destination is None or destination.file is None:
        raise Err(Error_Io("no file destination was granted"))
    for directory, name in preopens.get_directories():
        if name == destination.preopen:
            return directory.open_at(
                fs.PathFlags(0),
                destination.file,
                fs.OpenFlags.CREATE | fs.OpenFlags.EXCLUSIVE,
                fs.DescriptorFlags.WRITE,
            )
    raise Err(Error_Io(f"the granted directory {destination.preopen!r} is not preopened"))


def write_all(file, data):
    """Writes `data` at the start of `file`."""
    offset = 0
    while offset < len(data):
        offset += file.write(data[offset:], offset)


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return ComponentInfo(
            name=NAME,
            version=VERSION,
            summary="a skopeo-inspect-like JSON report of each platform's image (Python)",
            options=OPTIONS,
        )

    def validate(self, options):
        parse_options(options)
        return OutputKind.FILE

    def export(self, request):
        options = parse_options(request.options)
        root = image.root()
        descriptor = {"mediaType": root.media_type, "digest": root.digest, "size": root.size}
        entries = [
            report(root.digest, manifest, platform)
            for manifest, platform in image_manifests(descriptor)
        ]
        wanted = options.get("platform")
        if wanted:
            chosen = [e for e in entries if matches(wanted, e["Platform"])]
            if not chosen:
                have = ", ".join(e["Platform"] for e in entries)
                raise invalid(f"platform={wanted}: the image has {have}")
            entries = chosen
        if options.get("pretty", "true") == "true":
            text = json.dumps(entries, indent=2) + "\n"
        else:
            text = json.dumps(entries, separators=(",", ":"))
        file = open_destination(request.destination)
        write_all(file, text.encode())
        if "mode" in options:
            files.set_mode(file, int(options["mode"], 8))
        platforms = ",".join(e["Platform"] for e in entries)
        host.log(host.Level.INFO, f"inspected {len(entries)} image(s): {platforms}")
        return [
            ResponseEntry(key="containerimage.digest", value=root.digest),
            ResponseEntry(key="inspect.platforms", value=platforms),
        ]

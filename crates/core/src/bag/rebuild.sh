#!/bin/sh
# rebuild.sh -- rebuilds the raw image of the EBS volume preserved in this evidence bag.
# Written by forensnap. Needs only a POSIX sh (dash is enough) and dd.
#
# The payload keeps only the 524288-byte blocks EBS listed for the snapshot, concatenated
# in index order in DATA (below); the block map MAP gives, per stored block, its index in the
# volume and its byte offset in DATA. Blocks the map does not list are zeros.
#
# Usage, from the bag root (the directory holding bagit.txt):
#   sh rebuild.sh disk.raw   writes the raw image as a sparse file of VOLUME_BYTES bytes;
#                            then, still in the bag root, `sha256sum -c data/image.sha256`
#                            checks disk.raw against IMAGE_SHA256.
#   sh rebuild.sh -          writes the raw image to stdout ("stream" works too), needing no
#                            disk space:
#                              sh rebuild.sh - | sha256sum       (must print IMAGE_SHA256)
#                              sh rebuild.sh - | ewfacquirestream ...
set -eu

# The volume's size in bytes, EBS's block size, and the SHA-256 of the whole raw image.
VOLUME_BYTES=@VOLUME_BYTES@
BLOCK_SIZE=524288
IMAGE_SHA256=@IMAGE_SHA256@
# The stored blocks, the block map, and the sha256sum file that names the image disk.raw.
DATA=@DATA@
MAP=@MAP@
CHECK='data/image.sha256'
IMAGE_NAME='disk.raw'

# dd's "N+M records in" report is checked below; keep it untranslated.
LC_ALL=C
export LC_ALL
TAB=$(printf '\t')
BLOCKS=$(( (VOLUME_BYTES + BLOCK_SIZE - 1) / BLOCK_SIZE ))  # blocks the volume spans
FULL_BLOCKS=$(( VOLUME_BYTES / BLOCK_SIZE ))
TAIL=$(( VOLUME_BYTES % BLOCK_SIZE ))  # bytes of a partial last block (0 for EBS volumes)

mode=
out=
writing=

usage() {
    printf '%s\n' \
        "usage: sh rebuild.sh OUTPUT   write the raw image to the file OUTPUT (sparse)" \
        "       sh rebuild.sh -        write the raw image to stdout (also: stream)" \
        "Run it from the bag root (the directory holding bagit.txt)." >&2
    exit 2
}

fail() {
    printf 'rebuild.sh: %s\n' "$*" >&2
    if [ -n "$writing" ]; then
        printf 'rebuild.sh: %s is incomplete: do not use it\n' "$out" >&2
    fi
    exit 1
}

# number VALUE WHAT: VALUE must be a plain decimal. No sign, no leading zero ($(( )) reads 010
# as octal), at most 18 digits (64-bit arithmetic).
number() {
    case $1 in
        '' | *[!0-9]*) fail "$2 is not a decimal number: '$1'" ;;
        0?*) fail "$2 has a leading zero: '$1'" ;;
    esac
    if [ ${#1} -gt 18 ]; then
        fail "$2 is too large: $1"
    fi
}

# copy N DD-OPERANDS...: run dd quietly and fail unless it succeeded and read exactly N whole
# input blocks: a short or missing DATA must not silently give a shorter or shifted image.
# dd's stdout goes to fd 3 (the script's stdout), its report is captured.
copy() {
    want=$1
    shift
    if ! report=$(dd "$@" 2>&1 >&3); then
        fail "dd $* failed: $report"
    fi
    case $report in
        "$want+0 records in"*) ;;
        *) fail "dd $* did not read $want whole blocks (is $DATA complete?): $report" ;;
    esac
}

# zeros N: stream N zero blocks.
zeros() {
    if [ "$1" -gt 0 ]; then
        copy "$1" if=/dev/zero bs="$BLOCK_SIZE" count="$1"
    fi
}

# flush: write the current run of consecutive stored blocks (consecutive in the volume and
# in DATA) with one dd; one dd per block would take hours on a large volume.
flush() {
    if [ "$run_len" -eq 0 ]; then
        return 0
    fi
    if [ "$mode" = file ]; then
        copy "$run_len" if="$DATA" of="$out" bs="$BLOCK_SIZE" \
            skip=$((run_obj / BLOCK_SIZE)) seek="$run_index" count="$run_len" conv=notrunc
    else
        zeros $((run_index - next))
        full=$run_len
        if [ $((run_index + run_len)) -gt "$FULL_BLOCKS" ]; then
            full=$((run_len - 1))  # the run ends with the partial last block
        fi
        if [ "$full" -gt 0 ]; then
            copy "$full" if="$DATA" bs="$BLOCK_SIZE" skip=$((run_obj / BLOCK_SIZE)) count="$full"
        fi
        if [ "$full" -lt "$run_len" ]; then
            copy "$TAIL" if="$DATA" bs=1 skip=$((run_obj + full * BLOCK_SIZE)) count="$TAIL"
        fi
        next=$((run_index + run_len))
    fi
    run_len=0
}

if [ $# -ne 1 ]; then
    usage
fi
case $1 in
    - | stream) mode=stream ;;
    '' | -*) usage ;;
    *) mode=file out=$1 ;;
esac
if [ ! -f "$MAP" ]; then
    fail "$MAP not found: run this script from the bag root (the directory holding bagit.txt)"
fi
exec 3>&1
if [ "$mode" = file ]; then
    case $out in
        data/* | ./data/*) fail "refusing to write into the bag's payload: $out" ;;
    esac
    if [ -e "$out" ] && { [ "$out" -ef "$DATA" ] || [ "$out" -ef "$MAP" ]; }; then
        fail "refusing to overwrite the bag's payload: $out"
    fi
    # On a device, blocks the map does not list would keep their old bytes instead of zeros.
    if [ -e "$out" ] && [ ! -f "$out" ]; then
        fail "$out exists and is not a regular file: give a new file name"
    fi
    : >"$out"
    writing=1
elif [ -t 1 ]; then
    fail "refusing to write a disk image to a terminal: pipe it, e.g. sh rebuild.sh - | sha256sum"
fi

lineno=0
prev=-1                       # last index read
run_index=0 run_obj=0 run_len=0  # current run of stored blocks
next=0                        # stream: next volume block to write
while index=; IFS=$TAB read -r index offset length object_offset rest || [ -n "$index" ]; do
    lineno=$((lineno + 1))
    case $index in
        '#'*) continue ;;  # header
    esac
    if [ -z "$index$offset$length$object_offset$rest" ]; then
        continue
    fi
    where="$MAP line $lineno"
    number "$index" "$where: index"
    number "$offset" "$where: offset"
    number "$length" "$where: length"
    number "$object_offset" "$where: object_offset"
    if [ "$index" -ge "$BLOCKS" ]; then
        fail "$where: block $index lies beyond the end of the volume ($VOLUME_BYTES bytes)"
    fi
    if [ "$offset" -ne $((index * BLOCK_SIZE)) ]; then
        fail "$where: offset $offset is not index $index times $BLOCK_SIZE"
    fi
    if [ "$length" -ne "$BLOCK_SIZE" ]; then
        fail "$where: length $length is not the block size $BLOCK_SIZE"
    fi
    if [ $((object_offset % BLOCK_SIZE)) -ne 0 ]; then
        fail "$where: object_offset $object_offset is not a multiple of $BLOCK_SIZE"
    fi
    if [ "$index" -le "$prev" ]; then
        fail "$where: index $index does not follow the previous index $prev (indexes must increase)"
    fi
    prev=$index
    if [ "$run_len" -gt 0 ] && [ "$index" -eq $((run_index + run_len)) ] &&
        [ "$object_offset" -eq $((run_obj + run_len * BLOCK_SIZE)) ]; then
        run_len=$((run_len + 1))
    else
        flush
        run_index=$index run_obj=$object_offset run_len=1
    fi
done <"$MAP"
flush

if [ "$mode" = file ]; then
    # Set the exact length: extends the file sparsely past the last stored block.
    copy 0 if=/dev/null of="$out" bs=1 seek="$VOLUME_BYTES"
    writing=
    case $out in
        "$IMAGE_NAME" | "./$IMAGE_NAME")
            printf '%s\n' "Wrote $out ($VOLUME_BYTES bytes). Check it, from the bag root, with:" \
                "  sha256sum -c $CHECK" ;;
        *)
            printf '%s\n' "Wrote $out ($VOLUME_BYTES bytes). Its SHA-256 must be $IMAGE_SHA256" \
                "($CHECK names $IMAGE_NAME: sha256sum -c $CHECK checks a file of that name)." ;;
    esac
else
    zeros $((FULL_BLOCKS - next))
    if [ "$TAIL" -gt 0 ] && [ "$next" -le "$FULL_BLOCKS" ]; then
        copy "$TAIL" if=/dev/zero bs=1 count="$TAIL"
    fi
fi

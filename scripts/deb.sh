#!/usr/bin/env bash
# The Debian packages of a built tree (`make deb`):
#
#   libnginx-mod-http-commerce   the module for Debian's nginx, enabled the
#                                way Debian's own libnginx-mod-* are
#   commerce-workers             the workers, the SQL migrations, example
#                                configuration in /etc/commerce, systemd units
#
#   scripts/deb.sh               packages what `make module workers` built
#
# What a Debian package is made of lives in packaging/debian/ (control,
# copyright, maintainer scripts, units, configuration); this script lays the
# files out in staged trees, debian/<package>/ under a work dir as debhelper
# would, and lets dpkg's tools do the rest: dpkg-shlibdeps computes the
# library dependencies, the nginx ABI comes from nginx-dev (the file dh_nginx
# reads), dpkg-gencontrol writes DEBIAN/control (version, architecture,
# Installed-Size), dpkg-deb builds with root ownership. Nothing needs root.
#
# The version is VERSION's on a commit tagged v<VERSION>, else a snapshot
# that sorts before it: <VERSION>~git<commits>.<hash>[+dirty].
#
# Environment (defaults):
#   COMMERCE_BUILD=build             where `make` put the module and workers
#   COMMERCE_DEB_DIR=<build>/deb     where the .deb files go
set -euo pipefail
umask 022

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${COMMERCE_BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
OUT=${COMMERCE_DEB_DIR:-$BUILD/deb}
PKG=$ROOT/packaging/debian
WORK=$OUT/work
NGX_ABI=/usr/share/nginx/src/debian/libnginx-mod.abisubstvars
SO=ngx_http_commerce_module.so
MOD=libnginx-mod-http-commerce
WRK=commerce-workers
# the workers that are a user's tools, not an administrator's
USER_BINS="commerce-devbroker commerce-jwt commerce-participant-sim"

die() { printf 'deb: %s\n' "$*" >&2; exit 1; }

# Every workers/<name>/main.c is a worker, built as commerce-<name>.
workers() {
    local m
    for m in "$ROOT"/workers/*/main.c; do
        m=${m%/main.c}
        printf 'commerce-%s\n' "${m##*/}"
    done
}

# bindir <worker>: where it goes, /usr/sbin (man section 8) or /usr/bin (1).
bindir() {
    case " $USER_BINS " in *" $1 "*) echo usr/bin ;; *) echo usr/sbin ;; esac
}

preflight() {
    local t
    for t in dpkg-deb dpkg-gencontrol dpkg-shlibdeps help2man readelf strip
    do
        command -v "$t" >/dev/null \
            || die "$t is missing (make deps installs it)"
    done
    [ -s "$NGX_ABI" ] || die "$NGX_ABI is missing (nginx-dev)"
    [ -f "$BUILD/$SO" ] || die "$BUILD/$SO is missing: run make"
    for t in $(workers); do
        [ -x "$BUILD/bin/$t" ] || die "$BUILD/bin/$t is missing: run make"
    done
    # a sanitizer build needs its runtime preloaded into nginx: not a
    # package for anybody
    if readelf -d "$BUILD/$SO" | grep -q 'NEEDED.*lib[at]san'; then
        die "$BUILD is a sanitizer build (make SAN=1): not packaged"
    fi
}

git_() { git -C "$ROOT" "$@"; }

# UPSTREAM (VERSION's), VERSION (the packages'), SNAPSHOT (the commit,
# empty for a release), SOURCE_DATE_EPOCH (the commit's time: the date of
# the changelog, the man pages and the files).
version() {
    local base
    base=$(tr -d '[:space:]' <"$ROOT/VERSION")
    [[ $base =~ ^[0-9][0-9A-Za-z.+]*$ ]] \
        || die "VERSION: \"$base\" is not a Debian upstream version"
    UPSTREAM=$base
    VERSION=$base
    SNAPSHOT=
    if ! git_ rev-parse --verify -q HEAD >/dev/null 2>&1; then
        SOURCE_DATE_EPOCH=$(stat -c %Y "$ROOT/VERSION")
        return
    fi
    SOURCE_DATE_EPOCH=$(git_ log -1 --format=%ct)
    git_ update-index -q --refresh >/dev/null 2>&1 || true
    if git_ describe --exact-match --match "v$base" HEAD >/dev/null 2>&1 \
        && git_ diff-index --quiet HEAD --
    then
        return
    fi
    SNAPSHOT=$(git_ rev-parse --short=7 HEAD)
    VERSION="$base~git$(git_ rev-list --count HEAD).$SNAPSHOT"
    git_ diff-index --quiet HEAD -- || VERSION=$VERSION+dirty
}

# debian/control and debian/changelog of the work dir, for dpkg's tools.
debian_dir() {
    local maint dist=bookworm entry
    rm -rf "$WORK"
    mkdir -p "$WORK/debian"
    cp "$PKG/control" "$WORK/debian/control"
    maint=$(sed -n 's/^Maintainer: //p' "$PKG/control")
    entry="Release $VERSION."
    if [ -n "$SNAPSHOT" ]; then
        dist=UNRELEASED
        entry="Snapshot of git commit $SNAPSHOT."
    fi
    cat >"$WORK/debian/changelog" <<EOF
commerce-edge ($VERSION) $dist; urgency=medium

  * $entry

 -- $maint  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
}

# stage_docs <package>: copyright and the compressed changelog.
stage_docs() {
    local doc=$WORK/debian/$1/usr/share/doc/$1
    install -d "$doc"
    install -m 0644 "$PKG/copyright" "$doc/copyright"
    gzip -9n <"$WORK/debian/changelog" >"$doc/changelog.gz"
    chmod 0644 "$doc/changelog.gz"
}

# stage_scripts <package>: maintainer scripts and the conffiles list
# (every file under /etc).
stage_scripts() {
    local d=$WORK/debian/$1 s
    install -d "$d/DEBIAN"
    for s in postinst prerm postrm; do
        [ -f "$PKG/$1.$s" ] && install -m 0755 "$PKG/$1.$s" "$d/DEBIAN/$s"
    done
    if [ -d "$d/etc" ]; then
        (cd "$d" && find etc -type f -printf '/%p\n' | LC_ALL=C sort) \
            >"$d/DEBIAN/conffiles"
        chmod 0644 "$d/DEBIAN/conffiles"
    fi
}

# strip_elf <file>: as dh_strip does (the debug information stays in
# the build tree).
strip_elf() {
    case $1 in
    *.so) strip --remove-section=.comment --remove-section=.note \
              --strip-unneeded "$1" ;;
    *)    strip --remove-section=.comment --remove-section=.note "$1" ;;
    esac
}

stage_module() {
    local d=$WORK/debian/$MOD
    install -d "$d/usr/lib/nginx/modules" \
               "$d/usr/share/nginx/modules-available" "$d/etc/nginx/snippets"
    install -m 0644 "$BUILD/$SO" "$d/usr/lib/nginx/modules/$SO"
    strip_elf "$d/usr/lib/nginx/modules/$SO"
    install -m 0644 "$PKG/mod-http-commerce.conf" \
        "$d/usr/share/nginx/modules-available/mod-http-commerce.conf"
    install -m 0644 "$ROOT/conf/commerce-locations.conf" \
        "$d/etc/nginx/snippets/commerce-locations.conf"
    install -m 0644 "$ROOT/conf/commerce-carts.conf" \
        "$d/etc/nginx/snippets/commerce-carts.conf"
    install -m 0644 "$ROOT/conf/commerce-orders.conf" \
        "$d/etc/nginx/snippets/commerce-orders.conf"
    stage_docs "$MOD"
    stage_scripts "$MOD"
}

# The projector's configuration is conf/worker.conf (one home for its
# options and their comments) with the embedded stack's header dropped and
# its placeholders replaced by a single machine's defaults. Each
# replacement must hit exactly one line: a changed worker.conf stops the
# build instead of shipping a broken file.
PROJECTOR_CONF=(
    'pg.conninfo = "@PG_CONNINFO@"'
    'pg.conninfo = "host=/run/postgresql dbname=commerce"'
    'redis.address = @REDIS@'
    'redis.address = 127.0.0.1:6379'
    '#kafka.brokers = kafka-1:9092,kafka-2:9092,kafka-3:9092'
    'kafka.brokers = localhost:9092'
    'kafka.bootstrap_file = @KAFKA_BOOTSTRAP_FILE@'
    '#kafka.bootstrap_file = /path/to/bootstrap'
    'metrics.port = @METRICS_PORT@'
    'metrics.port = 9464'
)

projector_conf() {
    local out=$1 text i n
    text=$(sed '1,/^#$/d' "$ROOT/conf/worker.conf")
    for ((i = 0; i < ${#PROJECTOR_CONF[@]}; i += 2)); do
        n=$(grep -c -x -F -e "${PROJECTOR_CONF[i]}" <<<"$text" || true)
        [ "$n" = 1 ] || die "conf/worker.conf: not one line" \
                            "\"${PROJECTOR_CONF[i]}\" but $n"
        text=${text/"${PROJECTOR_CONF[i]}"/"${PROJECTOR_CONF[i + 1]}"}
    done
    if grep -n '@[A-Z_]*@' <<<"$text"; then
        die "conf/worker.conf: placeholders left for $out"
    fi
    {
        cat <<'EOF'
# /etc/commerce/projector.conf: commerce-projector, run by
# commerce-projector.service (systemctl enable --now commerce-projector).
# The addresses below are a single machine's defaults: put yours in.
# PostgreSQL: the local cluster's socket with peer authentication as the
# system user commerce (createuser commerce; createdb -O commerce commerce).
#
EOF
        printf '%s\n' "$text"
    } >"$out"
}

# man_page <worker> <section>: generated from --help (one home for the
# options), with the FILES and SEE ALSO of packaging/debian/man/ if any.
man_page() {
    local d=$WORK/debian/$WRK/usr/share/man/man$2 name h2m=()
    install -d "$d"
    name=$("$BUILD/bin/$1" --help | sed -n 2p)
    [ -f "$PKG/man/$1.h2m" ] && h2m=(--include="$PKG/man/$1.h2m")
    help2man --no-info --no-discard-stderr --section="$2" \
        --version-string="$UPSTREAM" --name="$name" "${h2m[@]}" \
        "$BUILD/bin/$1" | gzip -9n >"$d/$1.$2.gz"
    chmod 0644 "$d/$1.$2.gz"
}

stage_workers() {
    local d=$WORK/debian/$WRK b f
    local units=$d/lib/systemd/system
    install -d "$d/usr/sbin" "$d/usr/bin" "$d/etc/commerce" \
               "$d/usr/share/$WRK/sql" "$units" "$d/usr/lib/sysusers.d"
    for b in $(workers); do
        f=$d/$(bindir "$b")/$b
        install -m 0755 "$BUILD/bin/$b" "$f"
        strip_elf "$f"
        case $f in */usr/bin/*) man_page "$b" 1 ;; *) man_page "$b" 8 ;; esac
    done
    install -m 0644 "$ROOT"/sql/[0-9]*.sql "$d/usr/share/$WRK/sql/"
    projector_conf "$d/etc/commerce/projector.conf"
    install -m 0644 "$PKG/migrate.conf" "$PKG/replay.conf" "$d/etc/commerce/"
    for f in commerce-projector.service commerce-migrate.service; do
        install -m 0644 "$PKG/$f" "$units/$f"
    done
    install -m 0644 "$PKG/$WRK.sysusers" "$d/usr/lib/sysusers.d/$WRK.conf"
    stage_docs "$WRK"
    stage_scripts "$WRK"
}

# Depends: the libraries of the ELF files (dpkg-shlibdeps), and for the
# module the exact nginx ABI it was built against.
substvars() {
    local b elf=()
    for b in $(workers); do
        elf+=("debian/$WRK/$(bindir "$b")/$b")
    done
    (
        cd "$WORK"
        # the module's references to nginx's own symbols are resolved by
        # the nginx binary, not by a library: no warning for each
        dpkg-shlibdeps --warnings=2 -T"debian/$MOD.substvars" \
            "debian/$MOD/usr/lib/nginx/modules/$SO"
        dpkg-shlibdeps -T"debian/$WRK.substvars" "${elf[@]}"
    )
    grep '^nginx:abi=nginx-abi-' "$NGX_ABI" >>"$WORK/debian/$MOD.substvars" \
        || die "$NGX_ABI names no nginx:abi"
}

# md5sums of every file but the conffiles (dpkg keeps theirs).
md5sums() {
    local d=$WORK/debian/$1
    (
        cd "$d"
        find . -path ./DEBIAN -prune -o -type f -printf '%P\n' \
            | LC_ALL=C sort \
            | grep -v -x -F -f <(sed 's|^/||' DEBIAN/conffiles 2>/dev/null \
                                 || true) \
            | xargs -r -d '\n' md5sum
    ) >"$d/DEBIAN/md5sums"
    chmod 0644 "$d/DEBIAN/md5sums"
}

build_deb() {
    (cd "$WORK" && dpkg-gencontrol -p"$1" -P"debian/$1" \
         -T"debian/$1.substvars" -f"debian/files")
    md5sums "$1"
    rm -f "$OUT/$1"_*.deb
    dpkg-deb --root-owner-group -Zxz --build "$WORK/debian/$1" "$OUT" \
        >/dev/null
}

preflight
version
export SOURCE_DATE_EPOCH
mkdir -p "$OUT"
debian_dir
stage_module
stage_workers
substvars
build_deb "$MOD"
build_deb "$WRK"
ls "$OUT"/*_"$VERSION"_*.deb

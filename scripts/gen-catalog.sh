#!/usr/bin/env bash
# Generate a deterministic demo/bench catalog for the Redis read model:
#   cat:item:{id}  string, a ~350-byte JSON item document
#   cat:index      sorted set of every id, score 0 (lexicographic order)
#   inv:{store}    hashes (with -s), field = variant sku, value = stock JSON
#
# The same N always gives the same bytes, so a bench run and the static
# peer serve identical documents.
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: scripts/gen-catalog.sh [-f resp|cmd|files] [-d DIR] [-s STORES] N

  N          number of items, ids item-00001 .. item-N (at least 5 digits)
  -f resp    (default) Redis protocol on stdout, for `redis-cli --pipe`
  -f cmd     redis-cli commands on stdout, for `redis-cli < file`
  -f files   one file per document, DIR/<id>, body = the exact stored bytes
  -d DIR     output directory for -f files
  -s STORES  also write inventory hashes inv:store-001 .. inv:store-STORES
             (not with -f files)

examples:
  scripts/gen-catalog.sh 10000 | redis-cli -p 6390 --pipe
  scripts/gen-catalog.sh -s 3 100 | redis-cli -p 6390 --pipe
  scripts/gen-catalog.sh -f files -d /tmp/docs 10000
EOF
    exit 2
}

format=resp
dir=
stores=0
while getopts 'f:d:s:h' opt; do
    case $opt in
    f) format=$OPTARG ;;
    d) dir=$OPTARG ;;
    s) stores=$OPTARG ;;
    *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
n=$1

case $n in
''|*[!0-9]*) echo "gen-catalog: N must be a number" >&2; exit 2 ;;
esac
case $stores in ''|*[!0-9]*) echo "gen-catalog: bad -s" >&2; exit 2;; esac
[ "$n" -ge 1 ] || { echo "gen-catalog: N must be >= 1" >&2; exit 2; }
case $format in
resp|cmd) ;;
files)
    [ -n "$dir" ] || { echo "gen-catalog: -f files needs -d DIR" >&2; exit 2; }
    [ "$stores" -eq 0 ] || { echo "gen-catalog: -s not with -f files" >&2
                             exit 2; }
    mkdir -p "$dir"
    ;;
*) usage ;;
esac

# Byte semantics for length() whatever the caller's locale.
export LC_ALL=C

exec awk -v n="$n" -v fmt="$format" -v dir="$dir" -v stores="$stores" '
# Park-Miller LCG: every product stays below 2^53, so mawk and gawk agree.
function rnd(k) { seed = (seed * 16807) % 2147483647; return seed % k }
function pick(list,    a, c) { c = split(list, a, "|"); return a[rnd(c) + 1] }

# Emit one command. resp: RESP array of bulk strings; cmd: redis-cli line
# with every argument single-quoted (documents contain no single quote).
function emit(argc, argv,    i, s) {
    if (fmt == "resp") {
        s = "*" argc "\r\n"
        for (i = 1; i <= argc; i++)
            s = s "$" length(argv[i]) "\r\n" argv[i] "\r\n"
        printf "%s", s
    } else {
        s = ""
        for (i = 1; i <= argc; i++)
            s = s (i > 1 ? " " : "") "\x27" argv[i] "\x27"
        print s
    }
}

function item_doc(i, id, sku,    brand, kind, color, name, desc, words,
                  w, nw, k, nv, sz, vs, tags, price, cents, cur, head,
                  tail, ts, ver) {
    brand = pick("Northwind|Alpenglow|Fjordline|Kestrel|Bluepeak|" \
                 "Oakridge|Solano|Vireo")
    kind = pick("Trail Running Shoe|Rain Jacket|Merino Base Layer|" \
                "Hiking Pant|Down Vest|Fleece Hoodie|Daypack 22L|" \
                "Wool Beanie|Softshell Glove|Insulated Bottle")
    color = pick("black|navy|forest|sand|slate|ember|glacier|olive")
    name = brand " " kind " " toupper(substr(color, 1, 1)) substr(color, 2)

    nv = 2 + rnd(2)
    split("S|M|L|XL", sz, "|")
    vs = ""
    for (k = 1; k <= nv; k++)
        vs = vs (k > 1 ? "," : "") "{\"sku\":\"" sku "-" sz[k] \
             "\",\"size\":\"" sz[k] "\"}"

    tags = "\"" pick("outdoor|running|hiking|travel|winter") "\",\"" \
           pick("new|sale|bestseller|eco|classic") "\""
    cents = 990 + rnd(30000)
    price = sprintf("%d.%02d", int(cents / 100), cents % 100)
    cur = pick("EUR|EUR|EUR|USD|GBP")
    ts = sprintf("2024-%02d-%02dT%02d:%02d:%02dZ", 1 + rnd(12), 1 + rnd(28),
                 rnd(24), rnd(60), rnd(60))
    ver = 1 + rnd(20)

    head = "{\"id\":\"" id "\",\"sku\":\"" sku "\",\"name\":\"" name \
           "\",\"description\":\""
    tail = "\",\"brand\":\"" brand "\",\"price\":{\"amount\":\"" price \
           "\",\"currency\":\"" cur "\"},\"variants\":[" vs "],\"tags\":[" \
           tags "],\"updated_at\":\"" ts "\",\"version\":" ver "}"

    # Description: words until the document reaches about 350 bytes.
    words = "durable|lightweight|recycled|breathable|water-resistant|" \
            "packable|warm|soft|quick-drying|stretch|fabric|for|all-day|" \
            "comfort|on|the|trail|and|in|town|with|reinforced|seams|" \
            "adjustable|fit"
    nw = split(words, w, "|")
    desc = "A " tolower(kind)
    while (length(head) + length(desc) + length(tail) < 345)
        desc = desc " " w[rnd(nw) + 1]
    return head desc "." tail
}

function stock_doc(sku,    on, res, av) {
    on = rnd(120)
    res = rnd(on + 1) < 10 ? rnd(on + 1) : 0
    av = on - res
    return "{\"sku\":\"" sku "\",\"on_hand\":" on ",\"reserved\":" res \
           ",\"available\":" av ",\"orderable\":" (av > 0 ? "true" : \
           "false") ",\"version\":" (1 + rnd(9)) ",\"updated_at\":\"" \
           sprintf("2024-06-%02dT%02d:%02d:00Z", 1 + rnd(28), rnd(24), \
           rnd(60)) "\"}"
}

BEGIN {
    seed = 20240601
    width = length(n "") > 5 ? length(n "") : 5
    batch = 0

    for (i = 1; i <= n; i++) {
        num = sprintf("%0" width "d", i)
        id = "item-" num
        doc = item_doc(i, id, "SKU-" num)

        if (fmt == "files") {
            f = dir "/" id
            printf "%s", doc > f
            close(f)
            continue
        }

        a[1] = "SET"; a[2] = "cat:item:" id; a[3] = doc
        emit(3, a)
        skus[i] = "SKU-" num

        # cat:index in ZADD batches of 1000 members.
        if (batch == 0) {
            delete z
            z[1] = "ZADD"; z[2] = "cat:index"; zc = 2
        }
        z[++zc] = "0"; z[++zc] = id
        if (++batch == 1000 || i == n) { emit(zc, z); batch = 0 }
    }

    # Each store stocks about 80% of the items, sizes S and M of each.
    for (s = 1; s <= stores; s++) {
        key = sprintf("inv:store-%03d", s)
        for (i = 1; i <= n; i++) {
            if (rnd(10) >= 8)
                continue
            for (k = 0; k < 2; k++) {
                vsku = skus[i] "-" (k == 0 ? "S" : "M")
                h[1] = "HSET"; h[2] = key; h[3] = vsku; h[4] = stock_doc(vsku)
                emit(4, h)
            }
        }
    }
}'

#!/usr/bin/env bash
# Demo data through the real path: signed webhooks -> nginx -> Kafka ->
# commerce-projector -> PostgreSQL + Redis -> GET /v1/catalog via nginx.
#
#   scripts/demo-webhooks.sh load               send the demo catalog to the
#                                               canonical source, wait until
#                                               nginx serves all of it
#   scripts/demo-webhooks.sh example [source]   print a ready-to-paste signed
#                                               curl (source: standard, the
#                                               default, or canonical)
#
# The catalog: COMMERCE_DEMO_ITEMS items (item-00001 ...), each with 2-3
# variants (SKU-00001-S, -M, -L) and prices, some with a gift-wrap addon
# group and a store price override, stock in store-001 .. store-003. One
# POST per item, in the canonical format of
# workers/projector/proj_adapter_canonical.c ({"commands":[item.upsert,
# price.set, stock.set ...]}), signed the Standard Webhooks way with the
# first secret of $COMMERCE_RUN_DIR/secrets/canonical. Delivery ids are
# derived from the item ids, so sending twice changes nothing.
#
# Environment (defaults): COMMERCE_RUN_DIR (.run), COMMERCE_HOST (127.0.0.1),
# COMMERCE_HTTP_PORT (8080), COMMERCE_DEMO_ITEMS (200),
# COMMERCE_DEMO_MERCHANT (demo-merchant, the X-Merchant-Id: Kafka key).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN=${COMMERCE_RUN_DIR:-$ROOT/.run}
HOST=${COMMERCE_HOST:-127.0.0.1}
HTTP_PORT=${COMMERCE_HTTP_PORT:-8080}
ITEMS=${COMMERCE_DEMO_ITEMS:-200}
MERCHANT=${COMMERCE_DEMO_MERCHANT:-demo-merchant}
BASE=http://$HOST:$HTTP_PORT
AS_OF=2024-06-01T00:00:00Z

die() { printf 'demo-webhooks: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The first secret of a source (other lines: older secrets of a rotation).
secret_of() {
    local f=$RUN/secrets/$1
    [ -s "$f" ] || die "no secret file $f (run make up first)"
    grep -v -e '^#' -e '^[[:space:]]*$' "$f" | head -n 1
}

# The HMAC key of a Standard Webhooks secret: whsec_<base64> decoded, hex.
std_key_hex() {
    printf '%s' "${1#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n'
}

# std_sign <key hex> <webhook-id> <timestamp> <body file>: the base64
# HMAC-SHA256 of "{id}.{timestamp}.{body}".
std_sign() {
    { printf '%s.%s.' "$2" "$3"; cat "$4"; } \
        | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$1" -binary \
        | base64 -w0
}

# The demo catalog, one line per item: "<item id> TAB <JSON body>".
# Deterministic: the same N always gives the same bodies.
gen_catalog() {
    LC_ALL=C awk -v n="$1" -v as_of="$AS_OF" -v merchant="$MERCHANT" '
    # Park-Miller LCG, exact in mawk and gawk alike.
    function rnd(k) { seed = (seed * 16807) % 2147483647; return seed % k }
    function pick(list,    a, c) { c = split(list, a, "|"); return a[rnd(c) + 1] }
    function money(cents, cur) {
        return "{\"amount\":\"" sprintf("%d.%02d", int(cents / 100),
               cents % 100) "\",\"currency\":\"" cur "\"}"
    }

    BEGIN {
        seed = 20240601
        split("S|M|L", size, "|")
        for (i = 1; i <= n; i++) {
            num = sprintf("%05d", i)
            id = "item-" num
            sku = "SKU-" num
            brand = pick("Northwind|Alpenglow|Fjordline|Kestrel|Bluepeak|" \
                         "Oakridge|Solano|Vireo")
            kind = pick("Trail Running Shoe|Rain Jacket|Merino Base Layer|" \
                        "Hiking Pant|Down Vest|Fleece Hoodie|Daypack 22L|" \
                        "Wool Beanie|Softshell Glove|Insulated Bottle")
            color = pick("black|navy|forest|sand|slate|ember|glacier|olive")
            tag = pick("outdoor|running|hiking|travel|winter")
            cur = pick("EUR|EUR|EUR|USD|GBP")
            cents = 990 + rnd(30000)
            nv = 2 + rnd(2)

            vs = ""
            for (k = 1; k <= nv; k++) {
                vs = vs (k > 1 ? "," : "") "{\"sku\":\"" sku "-" size[k] \
                     "\",\"name\":\"" size[k] "\",\"options\":{\"size\":\"" \
                     size[k] "\"},\"price\":" money(cents + (k - 1) * 500, \
                     cur) "}"
            }

            addons = ""
            if (i % 7 == 1) {
                addons = ",\"addon_groups\":[{\"id\":\"gift-wrap\"," \
                         "\"name\":\"Gift wrap\",\"min\":0,\"max\":1," \
                         "\"addons\":[{\"id\":\"wrap-std\",\"name\":" \
                         "\"Standard\",\"price\":" money(200, cur) "}," \
                         "{\"id\":\"wrap-eco\",\"name\":\"Recycled paper\"," \
                         "\"price\":" money(300, cur) "}]}]"
            }

            cmds = "{\"type\":\"item.upsert\",\"merchant_id\":\"" merchant \
                   "\",\"as_of\":\"" as_of "\",\"item\":{\"id\":\"" id \
                   "\",\"sku\":\"" sku "\",\"name\":\"" brand " " kind \
                   "\",\"description\":\"A " tolower(kind) " by " brand \
                   ", in " color ".\",\"brand\":\"" brand "\",\"tags\":[\"" \
                   tag "\"],\"attributes\":{\"color\":\"" color \
                   "\"},\"variants\":[" vs "]" addons "}}"

            # Every 4th item costs 10% less in store-002.
            if (i % 4 == 0) {
                cmds = cmds ",{\"type\":\"price.set\",\"sku\":\"" sku \
                       "-S\",\"store_id\":\"store-002\",\"price\":" \
                       money(int(cents * 0.9), cur) ",\"as_of\":\"" \
                       as_of "\"}"
            }

            # Each store stocks 4 items in 5, every variant of them.
            for (s = 1; s <= 3; s++) {
                if ((i + s) % 5 == 0)
                    continue
                for (k = 1; k <= nv; k++) {
                    cmds = cmds ",{\"type\":\"stock.set\",\"store_id\":" \
                           "\"store-" sprintf("%03d", s) "\",\"sku\":\"" \
                           sku "-" size[k] "\",\"on_hand\":" rnd(120) \
                           ",\"unit\":\"each\",\"as_of\":\"" as_of "\"}"
                }
            }

            print id "\t{\"commands\":[" cmds "]}"
        }
    }'
}

# send <url> <key hex> <webhook-id> <body file> <dir>: one signed POST,
# retried while nginx says to come back (409 in flight, 429, 503).
send() {
    local url=$1 key=$2 wid=$3 body=$4 dir=$5 ts sig code attempt
    for ((attempt = 1; attempt <= 20; attempt++)); do
        printf -v ts '%(%s)T' -1
        sig=$(std_sign "$key" "$wid" "$ts" "$body")
        code=$(curl -s -o "$dir/resp" -w '%{http_code}' \
                    -H 'Content-Type: application/json' \
                    -H "X-Merchant-Id: $MERCHANT" \
                    -H "webhook-id: $wid" -H "webhook-timestamp: $ts" \
                    -H "webhook-signature: v1,$sig" \
                    --data-binary "@$body" "$url") || code=000
        case $code in
        200|202) return 0 ;;
        000|409|429|503) sleep 0.5 ;;
        *) die "$wid: HTTP $code $(cat "$dir/resp")" ;;
        esac
    done
    die "$wid: still HTTP $code after $attempt attempts: $(cat "$dir/resp")"
}

# Items served by GET /v1/catalog, following "next" to the end.
catalog_count() {
    local after="" n=0 page
    while :; do
        page=$(curl -sf "$BASE/v1/catalog?limit=200${after:+&after=$after}") \
            || return 1
        read -r c after < <(printf '%s' "$page" | perl -MJSON::PP -e '
            my $p = decode_json(do { local $/; <STDIN> });
            print scalar(@{ $p->{items} }), " ", $p->{next} // "", "\n"')
        n=$((n + c))
        [ -n "$after" ] || break
    done
    echo "$n"
}

load() {
    local key id body last n i
    case $ITEMS in ''|*[!0-9]*|0) die "COMMERCE_DEMO_ITEMS must be >= 1" ;; esac
    key=$(std_key_hex "$(secret_of canonical)")
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT

    gen_catalog "$ITEMS" >"$TMP/catalog"
    while IFS=$'\t' read -r id body; do
        printf '%s' "$body" >"$TMP/body"
        send "$BASE/v1/webhooks/canonical" "$key" "msg_demo_$id" \
            "$TMP/body" "$TMP"
        last=$id
    done <"$TMP/catalog"
    echo "sent $ITEMS signed webhooks to $BASE/v1/webhooks/canonical"

    # One merchant key, one partition: the projector applies them in order,
    # so the last item visible means every item before it was handled.
    for ((i = 0; i < 600; i++)); do
        curl -sf -o /dev/null "$BASE/v1/catalog/$last" && break
        sleep 0.1
    done
    curl -sf -o /dev/null "$BASE/v1/catalog/$last" \
        || die "$last is not visible after 60s (logs/projector.log)"

    n=$(catalog_count) || die "GET /v1/catalog failed"
    [ "$n" -ge "$ITEMS" ] \
        || die "only $n of $ITEMS items visible: rejected ones are in the" \
               "dead_letters table (logs/projector.log says why)"
    echo "visible through $BASE/v1/catalog: $n items"
}

# A signed curl command line for a source, fresh timestamp.
example() {
    local src=${1:-standard} secret body wid ts sig dir
    case $src in
    standard)
        body='{"type":"order.created","data":{"order_id":"ord_1001","total":{"amount":"42.00","currency":"EUR"}}}'
        ;;
    canonical)
        body='{"type":"stock.adjust","store_id":"store-001","sku":"SKU-00001-S","delta":-1,"reason":"sale","unit":"each"}'
        ;;
    *)
        die "example: standard or canonical"
        ;;
    esac
    secret=$(secret_of "$src")
    wid=msg_$(openssl rand -hex 8)
    printf -v ts '%(%s)T' -1
    dir=$(mktemp -d)
    printf '%s' "$body" >"$dir/body"
    sig=$(std_sign "$(std_key_hex "$secret")" "$wid" "$ts" "$dir/body")
    rm -rf "$dir"
    cat <<EOF
curl -i $BASE/v1/webhooks/$src \\
  -H 'Content-Type: application/json' -H 'X-Merchant-Id: $MERCHANT' \\
  -H 'webhook-id: $wid' -H 'webhook-timestamp: $ts' \\
  -H 'webhook-signature: v1,$sig' \\
  --data-binary '$body'
EOF
}

case "${1:-}" in
load) load ;;
example) example "${2:-}" ;;
*) usage ;;
esac

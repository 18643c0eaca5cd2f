/*
 * Validation of canonical commands: required attributes, types, units,
 * money and non-negative stock. The first problem found is reported with
 * a stable reason code and the path of the field. Valid commands are
 * normalised in place so the store code can rely on their shape.
 */

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "commerce_contract.h"
#include "commerce_currency.h"
#include "commerce_inbound.h"
#include "proj.h"

#define PROJ_AMOUNT_MAX   1000000000000LL    /* 10^10 units, in minor */
#define PROJ_QTY_MAX      1000000000000LL    /* on_hand and |delta| */


int
proj_valid_id(const char *s)
{
    size_t  i, n;

    if (s == NULL) {
        return 0;
    }

    n = strlen(s);
    if (n == 0 || n > PROJ_ID_MAX) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if ((unsigned char) s[i] <= 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/* "12", "12.9", "12.90" -> 1200, 1290, 1290 (decimals 2). No sign, no
 * exponent, at most decimals (0..2) decimals. */
int
proj_parse_amount(const char *s, int decimals, int64_t *minor)
{
    int64_t  units = 0, frac = 0;
    size_t   i = 0, d = 0;

    if (s == NULL || !isdigit((unsigned char) s[0])) {
        return -1;
    }

    while (isdigit((unsigned char) s[i])) {
        units = units * 10 + (s[i] - '0');
        if (units > PROJ_AMOUNT_MAX / 100) {
            return -1;
        }
        i++;
    }

    if (s[i] == '.') {
        i++;
        while (isdigit((unsigned char) s[i]) && d < 2) {
            frac = frac * 10 + (s[i] - '0');
            i++;
            d++;
        }
        if (d == 0 || d > (size_t) decimals) {
            return -1;
        }
        if (d == 1) {
            frac *= 10;
        }
    }

    if (s[i] != '\0') {
        return -1;
    }

    *minor = units * 100 + frac;

    return 0;
}


int
proj_valid_currency(const char *s)
{
    return commerce_currency_exponent(s) >= 0;
}


/* The edge's rule (commerce_inbound_parse_json), so that the module and
 * the projector refuse the same bodies for the same reasons. */
json_t *
proj_parse_object(const proj_input_t *in, proj_error_t *e)
{
    json_t        *root;
    const char    *reason;
    json_error_t   jerr;

    reason = commerce_inbound_parse_json(in->body, in->len, &root, &jerr);
    if (reason != NULL) {
        proj_error_set(e, reason, "line %d column %d: %s", jerr.line,
                       jerr.column, jerr.text);
        return NULL;
    }

    return root;
}


/* The number of the n digits at s. */
static int
proj_digits(const char *s, size_t n)
{
    int     v = 0;
    size_t  i;

    for (i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }

    return v;
}


/* A date and time that exist: month 1..12, a day of that month (leap
 * years too), hour 0..23, minute 0..59, second 0..60 (a leap second),
 * year 0001..9999. */
static int
proj_valid_instant(const char *s)
{
    static const int  mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
                                    31, 30, 31 };
    int               y, mo, d;

    y = proj_digits(s, 4);
    mo = proj_digits(s + 5, 2);
    d = proj_digits(s + 8, 2);

    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1]) {
        return 0;
    }

    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
    {
        return 0;
    }

    return proj_digits(s + 11, 2) <= 23 && proj_digits(s + 14, 2) <= 59
           && proj_digits(s + 17, 2) <= 60;
}


/* RFC 3339: 2024-06-01T12:00:00Z, optional fraction, Z or +hh:mm. */
int
proj_valid_timestamp(const char *s)
{
    static const char  pat[] = "dddd-dd-ddTdd:dd:dd";
    size_t             i;

    if (s == NULL || strlen(s) < sizeof(pat) - 1 + 1) {
        return 0;
    }

    for (i = 0; i < sizeof(pat) - 1; i++) {
        if (pat[i] == 'd' ? !isdigit((unsigned char) s[i]) : s[i] != pat[i])
        {
            return 0;
        }
    }

    if (!proj_valid_instant(s)) {
        return 0;
    }

    if (s[i] == '.') {
        i++;
        if (!isdigit((unsigned char) s[i])) {
            return 0;
        }
        while (isdigit((unsigned char) s[i])) {
            i++;
        }
    }

    if (s[i] == 'Z' && s[i + 1] == '\0') {
        return 1;
    }

    return (s[i] == '+' || s[i] == '-') && isdigit((unsigned char) s[i + 1])
           && isdigit((unsigned char) s[i + 2]) && s[i + 3] == ':'
           && isdigit((unsigned char) s[i + 4])
           && isdigit((unsigned char) s[i + 5]) && s[i + 6] == '\0'
           && proj_digits(s + i + 1, 2) <= 23
           && proj_digits(s + i + 4, 2) <= 59;
}


static int
proj_req_id(json_t *obj, const char *key, const char *path, proj_error_t *e)
{
    json_t  *v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        proj_error_set(e, "missing_field", "%s.%s: required", path, key);
        return -1;
    }

    if (!json_is_string(v)) {
        proj_error_set(e, "invalid_type", "%s.%s: must be a string", path, key);
        return -1;
    }

    if (!proj_valid_id(json_string_value(v))) {
        proj_error_set(e, "invalid_id", "%s.%s: 1..%d bytes without spaces "
                       "or control characters", path, key, PROJ_ID_MAX);
        return -1;
    }

    return 0;
}


static int
proj_opt_id(json_t *obj, const char *key, const char *path, proj_error_t *e)
{
    json_t  *v = json_object_get(obj, key);

    if (v == NULL || json_is_null(v)) {
        json_object_del(obj, key);
        return 0;
    }

    return proj_req_id(obj, key, path, e);
}


/* Optional string; null or absent becomes null. */
static int
proj_opt_str(json_t *obj, const char *key, size_t max, const char *path,
    proj_error_t *e)
{
    json_t  *v = json_object_get(obj, key);

    if (v == NULL) {
        json_object_set_new(obj, key, json_null());
        return 0;
    }

    if (json_is_null(v)) {
        return 0;
    }

    if (!json_is_string(v)) {
        proj_error_set(e, "invalid_type", "%s.%s: must be a string", path, key);
        return -1;
    }

    if (json_string_length(v) > max) {
        proj_error_set(e, "too_long", "%s.%s: longer than %zu bytes", path,
                       key, max);
        return -1;
    }

    return 0;
}


static int
proj_check_asof(json_t *cmd, const char *path, proj_error_t *e)
{
    json_t  *v = json_object_get(cmd, "as_of");

    if (v == NULL || json_is_null(v)) {
        json_object_del(cmd, "as_of");
        return 0;
    }

    if (!json_is_string(v) || !proj_valid_timestamp(json_string_value(v))) {
        proj_error_set(e, "invalid_timestamp",
                       "%s.as_of: must be an RFC 3339 timestamp", path);
        return -1;
    }

    return 0;
}


/* {"amount":"12.90","currency":"EUR"} -> adds "amount_minor":1290 */
static int
proj_check_price(json_t *price, const char *path, proj_error_t *e)
{
    int       exp;
    json_t   *amount, *cur;
    int64_t   minor;

    if (!json_is_object(price)) {
        proj_error_set(e, "invalid_type", "%s: must be an object", path);
        return -1;
    }

    amount = json_object_get(price, "amount");
    cur = json_object_get(price, "currency");

    if (amount == NULL || cur == NULL) {
        proj_error_set(e, "missing_field", "%s: amount and currency required",
                       path);
        return -1;
    }

    exp = json_is_string(cur) ? commerce_currency_exponent(json_string_value(cur))
                              : -1;
    if (exp < 0) {
        proj_error_set(e, "invalid_currency", "%s.currency: an active ISO "
                       "4217 code such as \"EUR\"", path);
        return -1;
    }

    if (!json_is_string(amount)
        || proj_parse_amount(json_string_value(amount), exp < 2 ? exp : 2,
                             &minor) != 0)
    {
        proj_error_set(e, "invalid_amount", "%s.amount: a decimal string with "
                       "at most %d decimals (%s), e.g. \"12.90\"", path,
                       exp < 2 ? exp : 2, json_string_value(cur));
        return -1;
    }

    json_object_set_new(price, "amount_minor", json_integer(minor));

    return 0;
}


static int
proj_check_unit(json_t *cmd, const char *path, proj_error_t *e)
{
    json_t  *u = json_object_get(cmd, "unit");

    if (u == NULL || json_is_null(u)) {
        json_object_set_new(cmd, "unit", json_string("each"));
        return 0;
    }

    if (!json_is_string(u) || strcmp(json_string_value(u), "each") != 0) {
        proj_error_set(e, "unsupported_unit", "%s.unit: only \"each\" is "
                       "supported", path);
        return -1;
    }

    return 0;
}


/* {"kind":"...","external_id":"..."} references resolved by the store. */
static int
proj_check_ref(json_t *ref, const char *path, proj_error_t *e)
{
    if (!json_is_object(ref)) {
        proj_error_set(e, "invalid_type", "%s: must be an object", path);
        return -1;
    }

    if (proj_req_id(ref, "kind", path, e) != 0
        || proj_req_id(ref, "external_id", path, e) != 0
        || proj_opt_id(ref, "default", path, e) != 0)
    {
        return -1;
    }

    return 0;
}


static int
proj_check_variants(json_t *item, const char *path, proj_error_t *e)
{
    json_t      *vs, *v, *w, *opts, *o;
    size_t       i, j;
    char         p[160];
    const char  *k;

    vs = json_object_get(item, "variants");
    if (vs == NULL || json_is_null(vs)) {
        json_object_set_new(item, "variants", json_array());
        return 0;
    }

    if (!json_is_array(vs)) {
        proj_error_set(e, "invalid_type", "%s.variants: must be an array",
                       path);
        return -1;
    }

    json_array_foreach(vs, i, v) {
        snprintf(p, sizeof(p), "%s.variants[%zu]", path, i);

        if (!json_is_object(v)) {
            proj_error_set(e, "invalid_type", "%s: must be an object", p);
            return -1;
        }

        if (proj_req_id(v, "sku", p, e) != 0
            || proj_opt_str(v, "name", 1024, p, e) != 0)
        {
            return -1;
        }

        for (j = 0; j < i; j++) {
            w = json_array_get(vs, j);
            if (json_equal(json_object_get(w, "sku"),
                           json_object_get(v, "sku")))
            {
                proj_error_set(e, "duplicate_sku", "%s.sku: repeated", p);
                return -1;
            }
        }

        opts = json_object_get(v, "options");
        if (opts == NULL || json_is_null(opts)) {
            json_object_set_new(v, "options", json_object());
        } else if (!json_is_object(opts)) {
            proj_error_set(e, "invalid_type", "%s.options: must be an object",
                           p);
            return -1;
        } else {
            json_object_foreach(opts, k, o) {
                if (!json_is_string(o)) {
                    proj_error_set(e, "invalid_type", "%s.options.%.32s: "
                                   "must be a string", p, k);
                    return -1;
                }
            }
        }

        o = json_object_get(v, "price");
        if (o != NULL && !json_is_null(o)) {
            snprintf(p, sizeof(p), "%s.variants[%zu].price", path, i);
            if (proj_check_price(o, p, e) != 0) {
                return -1;
            }
        }
    }

    return 0;
}


static int
proj_check_addons(json_t *item, const char *path, proj_error_t *e)
{
    json_t   *gs, *g, *as, *a, *min, *max, *price;
    size_t    i, j;
    char      p[160], q[224];

    gs = json_object_get(item, "addon_groups");
    if (gs == NULL || json_is_null(gs)) {
        json_object_set_new(item, "addon_groups", json_array());
        return 0;
    }

    if (!json_is_array(gs)) {
        proj_error_set(e, "invalid_type", "%s.addon_groups: must be an array",
                       path);
        return -1;
    }

    json_array_foreach(gs, i, g) {
        snprintf(p, sizeof(p), "%s.addon_groups[%zu]", path, i);

        if (!json_is_object(g)) {
            proj_error_set(e, "invalid_type", "%s: must be an object", p);
            return -1;
        }

        if (proj_req_id(g, "id", p, e) != 0) {
            return -1;
        }

        if (!json_is_string(json_object_get(g, "name"))) {
            proj_error_set(e, "missing_field", "%s.name: required string", p);
            return -1;
        }

        min = json_object_get(g, "min");
        max = json_object_get(g, "max");
        if (min == NULL) {
            json_object_set_new(g, "min", min = json_integer(0));
        }
        if (max == NULL) {
            json_object_set_new(g, "max", max = json_integer(1));
        }

        if (!json_is_integer(min) || !json_is_integer(max)
            || json_integer_value(min) < 0
            || json_integer_value(max) < json_integer_value(min)
            || json_integer_value(max) > 1000)
        {
            proj_error_set(e, "invalid_range", "%s: need integers "
                           "0 <= min <= max <= 1000", p);
            return -1;
        }

        as = json_object_get(g, "addons");
        if (as == NULL) {
            json_object_set_new(g, "addons", as = json_array());
        }

        if (!json_is_array(as)) {
            proj_error_set(e, "invalid_type", "%s.addons: must be an array",
                           p);
            return -1;
        }

        json_array_foreach(as, j, a) {
            snprintf(q, sizeof(q), "%s.addons[%zu]", p, j);

            if (!json_is_object(a) || proj_req_id(a, "id", q, e) != 0) {
                if (!json_is_object(a)) {
                    proj_error_set(e, "invalid_type", "%s: must be an object",
                                   q);
                }
                return -1;
            }

            if (!json_is_string(json_object_get(a, "name"))) {
                proj_error_set(e, "missing_field", "%s.name: required string",
                               q);
                return -1;
            }

            price = json_object_get(a, "price");
            if (price != NULL && !json_is_null(price)) {
                strncat(q, ".price", sizeof(q) - strlen(q) - 1);
                if (proj_check_price(price, q, e) != 0) {
                    return -1;
                }
            }
        }
    }

    return 0;
}


static int
proj_check_item_upsert(json_t *cmd, const char *path, proj_error_t *e)
{
    json_t       *item, *tags, *t, *attrs, *maps, *m, *ref;
    size_t        i;
    char          p[64];

    item = json_object_get(cmd, "item");
    snprintf(p, sizeof(p), "%s.item", path);

    if (item == NULL) {
        proj_error_set(e, "missing_field", "%s: required", p);
        return -1;
    }

    if (!json_is_object(item)) {
        proj_error_set(e, "invalid_type", "%s: must be an object", p);
        return -1;
    }

    if (proj_req_id(item, "id", p, e) != 0
        || proj_opt_id(cmd, "merchant_id", path, e) != 0
        || proj_check_asof(cmd, path, e) != 0
        || proj_opt_str(item, "sku", PROJ_ID_MAX, p, e) != 0
        || proj_opt_str(item, "description", 65536, p, e) != 0
        || proj_opt_str(item, "brand", 1024, p, e) != 0)
    {
        return -1;
    }

    if (!json_is_string(json_object_get(item, "name"))
        || json_string_length(json_object_get(item, "name")) == 0)
    {
        proj_error_set(e, json_object_get(item, "name") == NULL
                          ? "missing_field" : "invalid_type",
                       "%s.name: required non-empty string", p);
        return -1;
    }

    tags = json_object_get(item, "tags");
    if (tags == NULL || json_is_null(tags)) {
        json_object_set_new(item, "tags", json_array());
    } else if (!json_is_array(tags)) {
        proj_error_set(e, "invalid_type", "%s.tags: must be an array", p);
        return -1;
    } else {
        json_array_foreach(tags, i, t) {
            if (!json_is_string(t)) {
                proj_error_set(e, "invalid_type", "%s.tags[%zu]: must be a "
                               "string", p, i);
                return -1;
            }
        }
    }

    attrs = json_object_get(item, "attributes");
    if (attrs == NULL || json_is_null(attrs)) {
        json_object_set_new(item, "attributes", json_object());
    } else if (!json_is_object(attrs)) {
        proj_error_set(e, "invalid_type", "%s.attributes: must be an object",
                       p);
        return -1;
    }

    ref = json_object_get(cmd, "id_ref");
    if (ref != NULL && proj_check_ref(ref, "id_ref", e) != 0) {
        return -1;
    }

    maps = json_object_get(cmd, "mappings");
    if (maps != NULL) {
        if (!json_is_array(maps)) {
            proj_error_set(e, "invalid_type", "%s.mappings: must be an array",
                           path);
            return -1;
        }
        json_array_foreach(maps, i, m) {
            if (proj_check_ref(m, "mappings[]", e) != 0
                || proj_req_id(m, "canonical_id", "mappings[]", e) != 0)
            {
                return -1;
            }
        }
    }

    return proj_check_variants(item, p, e) != 0
           || proj_check_addons(item, p, e) != 0 ? -1 : 0;
}


static int
proj_check_price_set(json_t *cmd, const char *path, proj_error_t *e)
{
    char  p[64];

    if (proj_req_id(cmd, "sku", path, e) != 0
        || proj_opt_id(cmd, "store_id", path, e) != 0
        || proj_check_asof(cmd, path, e) != 0)
    {
        return -1;
    }

    if (json_object_get(cmd, "price") == NULL) {
        proj_error_set(e, "missing_field", "%s.price: required", path);
        return -1;
    }

    snprintf(p, sizeof(p), "%s.price", path);

    return proj_check_price(json_object_get(cmd, "price"), p, e);
}


/* sku and store_id, or references the store code resolves. */
static int
proj_check_stock_target(json_t *cmd, const char *path, proj_error_t *e)
{
    json_t  *ref;

    ref = json_object_get(cmd, "sku_ref");
    if (ref != NULL && json_object_get(cmd, "sku") == NULL) {
        if (proj_check_ref(ref, "sku_ref", e) != 0) {
            return -1;
        }
    } else if (proj_req_id(cmd, "sku", path, e) != 0) {
        return -1;
    }

    ref = json_object_get(cmd, "store_ref");
    if (ref != NULL && json_object_get(cmd, "store_id") == NULL) {
        if (proj_check_ref(ref, "store_ref", e) != 0) {
            return -1;
        }
        if (json_object_get(ref, "default") == NULL) {
            proj_error_set(e, "missing_field", "store_ref.default: required");
            return -1;
        }
        return 0;
    }

    return proj_req_id(cmd, "store_id", path, e);
}


static int
proj_check_stock_set(json_t *cmd, const char *path, proj_error_t *e)
{
    json_t  *q;

    if (proj_check_stock_target(cmd, path, e) != 0
        || proj_check_unit(cmd, path, e) != 0
        || proj_check_asof(cmd, path, e) != 0)
    {
        return -1;
    }

    q = json_object_get(cmd, "on_hand");
    if (q == NULL || json_is_null(q)) {
        proj_error_set(e, "missing_field", "%s.on_hand: required", path);
        return -1;
    }

    if (!json_is_integer(q)) {
        proj_error_set(e, "invalid_quantity", "%s.on_hand: must be an integer",
                       path);
        return -1;
    }

    if (json_integer_value(q) < 0) {
        proj_error_set(e, "negative_stock", "%s.on_hand: %lld is negative",
                       path, (long long) json_integer_value(q));
        return -1;
    }

    if (json_integer_value(q) > PROJ_QTY_MAX) {
        proj_error_set(e, "out_of_range", "%s.on_hand: at most %lld", path,
                       PROJ_QTY_MAX);
        return -1;
    }

    return 0;
}


static int
proj_check_stock_adjust(json_t *cmd, const char *path, proj_error_t *e)
{
    json_t       *d, *r;
    const char   *s;
    size_t        i;

    if (proj_check_stock_target(cmd, path, e) != 0
        || proj_check_unit(cmd, path, e) != 0)
    {
        return -1;
    }

    d = json_object_get(cmd, "delta");
    if (d == NULL) {
        proj_error_set(e, "missing_field", "%s.delta: required", path);
        return -1;
    }

    if (!json_is_integer(d) || json_integer_value(d) == 0) {
        proj_error_set(e, "invalid_quantity", "%s.delta: must be a non-zero "
                       "integer", path);
        return -1;
    }

    if (json_integer_value(d) > PROJ_QTY_MAX
        || json_integer_value(d) < -PROJ_QTY_MAX)
    {
        proj_error_set(e, "out_of_range", "%s.delta: between -%lld and %lld",
                       path, PROJ_QTY_MAX, PROJ_QTY_MAX);
        return -1;
    }

    r = json_object_get(cmd, "reason");
    if (r == NULL) {
        proj_error_set(e, "missing_field", "%s.reason: required", path);
        return -1;
    }

    s = json_string_value(r);
    if (s == NULL || !islower((unsigned char) s[0]) || strlen(s) > 64) {
        proj_error_set(e, "invalid_reason", "%s.reason: [a-z][a-z0-9_]{0,63}",
                       path);
        return -1;
    }

    for (i = 0; s[i] != '\0'; i++) {
        if (!islower((unsigned char) s[i]) && !isdigit((unsigned char) s[i])
            && s[i] != '_')
        {
            proj_error_set(e, "invalid_reason",
                           "%s.reason: [a-z][a-z0-9_]{0,63}", path);
            return -1;
        }
    }

    return 0;
}


int
proj_validate_command(json_t *cmd, const char *path, proj_error_t *e)
{
    const char  *type;

    if (!json_is_object(cmd)) {
        proj_error_set(e, "invalid_command", "%s: not an object", path);
        return -1;
    }

    type = json_string_value(json_object_get(cmd, "type"));
    if (type == NULL) {
        proj_error_set(e, "missing_field", "%s.type: required string", path);
        return -1;
    }

    if (strcmp(type, COMMERCE_CMD_ITEM_UPSERT) == 0) {
        return proj_check_item_upsert(cmd, path, e);
    }

    if (strcmp(type, COMMERCE_CMD_PRICE_SET) == 0) {
        return proj_check_price_set(cmd, path, e);
    }

    if (strcmp(type, COMMERCE_CMD_STOCK_SET) == 0) {
        return proj_check_stock_set(cmd, path, e);
    }

    if (strcmp(type, COMMERCE_CMD_STOCK_ADJUST) == 0) {
        return proj_check_stock_adjust(cmd, path, e);
    }

    proj_error_set(e, "unknown_command", "%s.type: \"%.32s\" is not one of "
                   "item.upsert, price.set, stock.set, stock.adjust", path,
                   type);

    return -1;
}

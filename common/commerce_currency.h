/*
 * commerce_currency: the currencies prices may be in, and exact money
 * arithmetic in their minor units, for the nginx module (cart totals) and
 * the workers (the projector's validation).  Pure C, no allocation.
 *
 * The currencies are the active codes of ISO 4217 (list one, as amended
 * to 2025), each with its minor-unit exponent (EUR 2, JPY 0, KWD 3); codes
 * without a minor unit (gold, special drawing rights, XTS, XXX) are not
 * currencies of a price.  commerce_currency.c is the one place they are
 * listed.
 *
 * An amount is a decimal string ("238.07", "1200", "2.5"): parsed into
 * minor units of a currency exactly (no floating point), any digits past
 * the exponent must be zeros ("1200.00" is 1200 JPY, "1.005" is not EUR).
 *
 * Use:
 *
 *     e = commerce_currency_exponent("EUR");           2, or -1: unknown
 *     if (commerce_money_parse(s, len, e, &minor) == 0) { ... }
 *     end = commerce_money_format(buf, minor, e);     "476.14"
 */

#ifndef COMMERCE_CURRENCY_H
#define COMMERCE_CURRENCY_H


#include <stddef.h>
#include <stdint.h>


/* the largest amount, in minor units: 10^15 (a line total stays exact) */
#define COMMERCE_MONEY_MAX   1000000000000000LL

/* room for commerce_money_format(): sign, 19 digits, a point, a NUL */
#define COMMERCE_MONEY_LEN   24


/* the minor-unit exponent of an active ISO 4217 code, -1 for any other
 * text (NUL-terminated) */
int commerce_currency_exponent(const char *code);

/* s[0..len) in minor units of a currency of exponent exp: 0, or -1 when
 * it is not an unsigned decimal, has non-zero digits past exp or exceeds
 * COMMERCE_MONEY_MAX */
int commerce_money_parse(const char *s, size_t len, int exp,
    int64_t *minor);

/* minor (0..COMMERCE_MONEY_MAX) written with exp decimals, without a NUL;
 * returns the end */
char *commerce_money_format(char *dst, int64_t minor, int exp);


#endif /* COMMERCE_CURRENCY_H */

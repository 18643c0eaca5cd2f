/*
 * Unit tests of the ISO 4217 table and exact money arithmetic
 * (common/commerce_currency.c): exponents, amounts parsed into minor units
 * of each exponent, totals written back.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "commerce_currency.h"


static void
test_exponent(void **state)
{
    (void) state;

    assert_int_equal(commerce_currency_exponent("EUR"), 2);
    assert_int_equal(commerce_currency_exponent("JPY"), 0);
    assert_int_equal(commerce_currency_exponent("KWD"), 3);
    assert_int_equal(commerce_currency_exponent("CLF"), 4);
    assert_int_equal(commerce_currency_exponent("AED"), 2);
    assert_int_equal(commerce_currency_exponent("ZWG"), 2);
    assert_int_equal(commerce_currency_exponent("ZZZ"), -1);
    assert_int_equal(commerce_currency_exponent("XXX"), -1);
    assert_int_equal(commerce_currency_exponent("XAU"), -1);
    assert_int_equal(commerce_currency_exponent("HRK"), -1);
    assert_int_equal(commerce_currency_exponent("eur"), -1);
    assert_int_equal(commerce_currency_exponent("EURO"), -1);
    assert_int_equal(commerce_currency_exponent(""), -1);
    assert_int_equal(commerce_currency_exponent(NULL), -1);
}


static int64_t
parse(const char *s, int exp)
{
    int64_t  minor = -7;

    if (commerce_money_parse(s, strlen(s), exp, &minor) != 0) {
        return -1;
    }

    return minor;
}


static void
test_parse(void **state)
{
    (void) state;

    /* the read model's amounts have two decimals, whatever the currency */
    assert_int_equal(parse("238.07", 2), 23807);
    assert_int_equal(parse("0.01", 2), 1);
    assert_int_equal(parse("0", 2), 0);
    assert_int_equal(parse("12.9", 2), 1290);
    assert_int_equal(parse("12", 2), 1200);
    assert_int_equal(parse("1200.00", 0), 1200);
    assert_int_equal(parse("1200", 0), 1200);
    assert_int_equal(parse("1.25", 3), 1250);
    assert_int_equal(parse("1.250", 3), 1250);
    assert_int_equal(parse("1.2345", 4), 12345);
    assert_int_equal(parse("007.50", 2), 750);

    /* a fraction of the minor unit is not an amount of the currency */
    assert_int_equal(parse("1200.50", 0), -1);
    assert_int_equal(parse("1.005", 2), -1);
    assert_int_equal(parse("1.0050", 3), 1005);
    assert_int_equal(parse("1.00050", 3), -1);
    assert_int_equal(parse("1.000000", 2), 100);

    /* not an unsigned decimal */
    assert_int_equal(parse("", 2), -1);
    assert_int_equal(parse("-1.00", 2), -1);
    assert_int_equal(parse("+1", 2), -1);
    assert_int_equal(parse(".5", 2), -1);
    assert_int_equal(parse("1.", 2), -1);
    assert_int_equal(parse("1..2", 2), -1);
    assert_int_equal(parse("1.2.3", 2), -1);
    assert_int_equal(parse("1e3", 2), -1);
    assert_int_equal(parse(" 1", 2), -1);
    assert_int_equal(parse("1 ", 2), -1);
    assert_int_equal(parse("1", -1), -1);

    /* the bound: 10^15 minor units, never an overflow */
    assert_int_equal(parse("10000000000000.00", 2), COMMERCE_MONEY_MAX);
    assert_int_equal(parse("10000000000000.01", 2), -1);
    assert_int_equal(parse("1000000000000000", 0), COMMERCE_MONEY_MAX);
    assert_int_equal(parse("99999999999999999999999", 0), -1);
    assert_int_equal(parse("100000000000000", 2), -1);

    /* only len bytes are read */
    {
        int64_t  minor;

        assert_int_equal(commerce_money_parse("12.345", 4, 2, &minor), 0);
        assert_int_equal(minor, 1230);
    }
}


static void
check_format(int64_t minor, int exp, const char *want)
{
    char  buf[COMMERCE_MONEY_LEN], *end;

    memset(buf, 'X', sizeof(buf));
    end = commerce_money_format(buf, minor, exp);

    assert_int_equal((size_t) (end - buf), strlen(want));
    assert_memory_equal(buf, want, strlen(want));
    assert_int_equal(*end, 'X');
}


static void
test_format(void **state)
{
    (void) state;

    check_format(47614, 2, "476.14");
    check_format(1, 2, "0.01");
    check_format(10, 2, "0.10");
    check_format(0, 2, "0.00");
    check_format(2400, 0, "2400");
    check_format(0, 0, "0");
    check_format(2500, 3, "2.500");
    check_format(5, 4, "0.0005");
    check_format(COMMERCE_MONEY_MAX, 2, "10000000000000.00");
    check_format(COMMERCE_MONEY_MAX, 0, "1000000000000000");
}


/* what is written parses back to the same minor units */
static void
test_round_trip(void **state)
{
    int      e;
    char     buf[COMMERCE_MONEY_LEN], *end;
    int64_t  v, minor;

    (void) state;

    for (e = 0; e <= 4; e++) {
        for (v = 0; v < 100000; v += 37) {
            end = commerce_money_format(buf, v, e);
            assert_int_equal(commerce_money_parse(buf, end - buf, e, &minor),
                             0);
            assert_int_equal(minor, v);
        }
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_exponent),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

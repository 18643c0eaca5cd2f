/*
 * commerce_b64url: strict base64url (see the header).
 */

#include "commerce_b64url.h"


static const char  commerce_b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


/* the value of a character, or -1 */
static int
commerce_b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '-') {
        return 62;
    }

    return c == '_' ? 63 : -1;
}


int
commerce_b64url_char(unsigned char c)
{
    return commerce_b64url_value(c) >= 0;
}


/*
 * Four characters make three bytes; a last group of two or three makes
 * one or two, and the bits it has beyond them must be zero.
 */
ssize_t
commerce_b64url_decode(unsigned char *out, const unsigned char *in,
    size_t len)
{
    int             v;
    size_t          i, n, bits;
    unsigned long   acc;

    if (len % 4 == 1) {
        return -1;
    }

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        v = commerce_b64url_value(in[i]);
        if (v < 0) {
            return -1;
        }

        acc = (acc << 6) | (unsigned long) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }

    /* what is left over is 2 or 4 bits of the last character */
    if (acc != 0) {
        return -1;
    }

    return (ssize_t) n;
}


unsigned char *
commerce_b64url_encode(unsigned char *out, const unsigned char *in,
    size_t len)
{
    size_t          i;
    unsigned long   acc;

    for (i = 0; i + 2 < len; i += 3) {
        acc = ((unsigned long) in[i] << 16) | ((unsigned long) in[i + 1] << 8)
              | in[i + 2];
        *out++ = commerce_b64url_alphabet[(acc >> 18) & 63];
        *out++ = commerce_b64url_alphabet[(acc >> 12) & 63];
        *out++ = commerce_b64url_alphabet[(acc >> 6) & 63];
        *out++ = commerce_b64url_alphabet[acc & 63];
    }

    if (len - i == 1) {
        acc = (unsigned long) in[i] << 16;
        *out++ = commerce_b64url_alphabet[(acc >> 18) & 63];
        *out++ = commerce_b64url_alphabet[(acc >> 12) & 63];

    } else if (len - i == 2) {
        acc = ((unsigned long) in[i] << 16) | ((unsigned long) in[i + 1] << 8);
        *out++ = commerce_b64url_alphabet[(acc >> 18) & 63];
        *out++ = commerce_b64url_alphabet[(acc >> 12) & 63];
        *out++ = commerce_b64url_alphabet[(acc >> 6) & 63];
    }

    return out;
}

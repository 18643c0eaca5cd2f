/*
 * commerce_b64url: base64url without padding (RFC 4648 section 5), as JOSE
 * writes it (RFC 7515 section 2), for the JWT core and the commerce-jwt
 * tool.  Pure C, no allocation: the caller sizes the output.
 *
 * Decoding is strict, so that one value has one spelling: only the
 * alphabet A-Z a-z 0-9 - _, no padding, no whitespace, no length that
 * leaves a lone character (len % 4 == 1), and the unused low bits of the
 * last character zero.  A token whose signature could be spelled two ways
 * would be two tokens with one signature.
 *
 * Use:
 *
 *     n = commerce_b64url_decode(out, in, len);     out: DECODED_MAX(len)
 *     if (n < 0) {
 *         ... not canonical base64url ...
 *     }
 *
 *     end = commerce_b64url_encode(out, in, len);   out: ENCODED_LEN(len)
 */

#ifndef COMMERCE_B64URL_H
#define COMMERCE_B64URL_H


#include <stddef.h>
#include <sys/types.h>


#define COMMERCE_B64URL_DECODED_MAX(len)  ((len) / 4 * 3 + 2)
#define COMMERCE_B64URL_ENCODED_LEN(len)  (((len) * 4 + 2) / 3)


/* whether c is a character of the base64url alphabet */
int commerce_b64url_char(unsigned char c);

/* the number of bytes written at out, or -1 */
ssize_t commerce_b64url_decode(unsigned char *out, const unsigned char *in,
    size_t len);

/* writes the text at out (no NUL) and returns its end */
unsigned char *commerce_b64url_encode(unsigned char *out,
    const unsigned char *in, size_t len);


#endif /* COMMERCE_B64URL_H */

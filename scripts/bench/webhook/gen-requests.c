/*
 * gen-requests: the request pool of the webhook benchmark. wrk's LuaJIT has
 * no HMAC, so the signed requests are made here, once before each run, and
 * the wrk script (wrk-webhook.lua) sends them in order.
 *
 *   gen-requests SECRET COUNT ID_PREFIX HOST PATH BODY_SIZE OUT [TS_SHIFT]
 *
 * writes COUNT raw HTTP/1.1 POST requests, all of the same length, back to
 * back into OUT, each a Standard Webhooks delivery:
 *   webhook-id: <ID_PREFIX><12-digit sequence>   (unique in the pool)
 *   webhook-timestamp: <now + TS_SHIFT seconds (default 0)>
 *   webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{ts}.{body}" keyed
 *                      with the base64-decoded whsec_ SECRET>
 * and a JSON body of exactly BODY_SIZE bytes that names the id. Prints the
 * length of one request on stdout.
 *
 * Build: cc -O2 gen-requests.c -o gen-requests -lcrypto
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>


#define GEN_BODY_MAX  65536


static void
die(const char *msg)
{
    fprintf(stderr, "gen-requests: %s\n", msg);
    exit(1);
}


/* The secret as Standard Webhooks libraries read it: base64 after an
 * optional "whsec_" prefix. */
static int
decode_secret(const char *secret, unsigned char *key, int *key_len)
{
    size_t  len;
    int     n;

    if (strncmp(secret, "whsec_", 6) == 0) {
        secret += 6;
    }
    len = strlen(secret);
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > 256) {
        return -1;
    }
    n = EVP_DecodeBlock(key, (const unsigned char *) secret, (int) len);
    if (n < 0) {
        return -1;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes */
    if (secret[len - 1] == '=') {
        n--;
    }
    if (secret[len - 2] == '=') {
        n--;
    }
    *key_len = n;
    return 0;
}


/* A JSON object of exactly size bytes naming the delivery: an order event
 * padded by a "note" string. */
static int
make_body(char *body, size_t size, const char *id, long seq)
{
    int  n, pad;

    n = snprintf(body, size, "{\"type\":\"order.created\",\"id\":\"%s\","
                 "\"data\":{\"order_id\":%ld,\"currency\":\"EUR\","
                 "\"total\":\"%ld.%02ld\",\"note\":\"", id, seq,
                 seq % 1000, seq % 100);
    if (n < 0 || (size_t) n + 3 > size) {
        return -1;
    }
    pad = (int) size - n - 3;
    memset(body + n, 'x', pad);
    memcpy(body + n + pad, "\"}}", 3);
    return 0;
}


int
main(int argc, char **argv)
{
    unsigned char   key[256], mac[EVP_MAX_MD_SIZE];
    unsigned char   sig[EVP_MAX_MD_SIZE * 2];
    unsigned int    mac_len;
    static char     body[GEN_BODY_MAX], content[GEN_BODY_MAX + 128];
    char            id[128], ts[32];
    const char     *prefix, *host, *path;
    size_t          size, clen;
    long            count, seq;
    FILE           *out;
    long            reqlen, first, shift;
    int             key_len, n;

    if (argc != 8 && argc != 9) {
        die("usage: gen-requests SECRET COUNT ID_PREFIX HOST PATH "
            "BODY_SIZE OUT [TS_SHIFT]");
    }
    if (decode_secret(argv[1], key, &key_len) != 0) {
        die("the secret is not whsec_<base64>");
    }
    count = strtol(argv[2], NULL, 10);
    prefix = argv[3];
    host = argv[4];
    path = argv[5];
    size = strtoul(argv[6], NULL, 10);
    shift = argc == 9 ? strtol(argv[8], NULL, 10) : 0;
    if (count <= 0 || count > 999999999999L) {
        die("COUNT out of range");
    }
    if (size < 128 || size > GEN_BODY_MAX || strlen(prefix) > 64) {
        die("BODY_SIZE must be 128..65536, ID_PREFIX at most 64 bytes");
    }
    out = fopen(argv[7], "w");
    if (out == NULL) {
        die("cannot open the output file");
    }

    /* one timestamp for the pool: it stays inside the 300 s window for
     * the few seconds of a run */
    snprintf(ts, sizeof(ts), "%ld", (long) time(NULL) + shift);
    first = -1;

    for (seq = 0; seq < count; seq++) {
        snprintf(id, sizeof(id), "%s%012ld", prefix, seq);
        if (make_body(body, size, id, seq) != 0) {
            die("BODY_SIZE too small for the JSON skeleton");
        }
        n = snprintf(content, sizeof(content), "%s.%s.", id, ts);
        memcpy(content + n, body, size);
        clen = n + size;

        if (HMAC(EVP_sha256(), key, key_len, (unsigned char *) content,
                 clen, mac, &mac_len) == NULL)
        {
            die("HMAC failed");
        }
        EVP_EncodeBlock(sig, mac, (int) mac_len);

        reqlen = fprintf(out, "POST %s HTTP/1.1\r\n"
                         "Host: %s\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %zu\r\n"
                         "webhook-id: %s\r\n"
                         "webhook-timestamp: %s\r\n"
                         "webhook-signature: v1,%s\r\n"
                         "\r\n", path, host, size, id, ts, sig);
        if (reqlen < 0 || fwrite(body, 1, size, out) != size) {
            die("write failed");
        }
        reqlen += (long) size;
        if (first < 0) {
            first = reqlen;
        } else if (reqlen != first) {
            die("requests of different lengths");
        }
    }

    if (fclose(out) != 0) {
        die("write failed");
    }
    printf("%ld\n", first);
    return 0;
}

/*
 * The worker's cache of read-model values (see
 * ngx_http_commerce_redis_cache.h).
 *
 * Redis keys are in a hash table (chained, doubled as it fills: one or
 * two cache lines per lookup where a tree of 10,000 keys took 14); each
 * holds a tree of its cached fields (the one entry of a GET, the fields
 * of a hash read with HGET), so that an invalidation, which names a key,
 * drops all of them.  Every entry is also on a queue that bounds the
 * memory: a hit only marks its entry (moving it to the head would touch
 * two more entries' cache lines on every read), and eviction gives a
 * marked entry at the tail a second chance at the head (the CLOCK
 * approximation of LRU).
 *
 * Coherence: an entry is created empty, as a placeholder, when a miss
 * sends its command, and only that reply fills it.  The invalidation of a
 * write made after Redis ran the command travels on another connection
 * and may arrive before the reply: it drops the placeholder, and the
 * reply, older than the write, is not kept.  Whatever was cached while a
 * server's tracking was down is dropped when it goes down.
 */

#include <ngx_config.h>
#include <ngx_core.h>

#include "commerce_contract.h"

#include "ngx_http_commerce_redis_cache.h"
#include "ngx_http_commerce_util.h"


/* the table's first size: a bucket per this many bytes of the cache */
#define NGX_HTTP_COMMERCE_REDIS_CACHE_BUCKET_BYTES   1024
#define NGX_HTTP_COMMERCE_REDIS_CACHE_MIN_BUCKETS    64


typedef struct ngx_http_commerce_redis_cache_key_s
    ngx_http_commerce_redis_cache_key_t;

struct ngx_http_commerce_redis_cache_key_s {
    ngx_http_commerce_redis_cache_key_t    *next;     /* in its bucket */
    uint64_t                                hash;
    ngx_str_t                               name;     /* the Redis key */
    ngx_rbtree_t                            fields;
    ngx_rbtree_node_t                       sentinel;
};


struct ngx_http_commerce_redis_cache_entry_s {
    ngx_str_node_t                          sn;       /* the hash field */
    ngx_queue_t                             lru;
    ngx_http_commerce_redis_cache_key_t    *owner;    /* NULL: dropped */
    u_char                                 *value;    /* NULL: nil */
    size_t                                  len;
    size_t                                  size;     /* what it counts */
    ngx_msec_t                              expires;
    unsigned                                hget:1;
    unsigned                                used:1;   /* hit since queued */
    unsigned                                filled:1;
    unsigned                                pending:1;
};


typedef struct {
    ngx_http_commerce_redis_cache_key_t   **buckets;
    ngx_uint_t                              nbuckets; /* a power of 2 */
    ngx_uint_t                              nkeys;
    ngx_queue_t                             lru;      /* newest first */
    size_t                                  max;
    size_t                                  used;
    ngx_msec_t                              valid;
    ngx_log_t                              *log;
    ngx_uint_t                              ready;
} ngx_http_commerce_redis_cache_t;


static ngx_http_commerce_redis_cache_key_t *
    ngx_http_commerce_redis_cache_key_find(ngx_str_t *key, uint64_t hash);
static void ngx_http_commerce_redis_cache_key_insert(
    ngx_http_commerce_redis_cache_key_t *k);
static void ngx_http_commerce_redis_cache_key_remove(
    ngx_http_commerce_redis_cache_key_t *k);
static void ngx_http_commerce_redis_cache_grow(void);
static ngx_int_t ngx_http_commerce_redis_cache_cmd(
    ngx_http_commerce_redis_cmd_t *cmd, ngx_str_t *key, ngx_str_t *field);
static ngx_http_commerce_redis_cache_entry_t *
    ngx_http_commerce_redis_cache_add(ngx_http_commerce_redis_cache_key_t *k,
    ngx_str_t *key, uint64_t hash, ngx_str_t *field, ngx_uint_t hget);
static void ngx_http_commerce_redis_cache_drop(
    ngx_http_commerce_redis_cache_entry_t *e);
static void ngx_http_commerce_redis_cache_evict(void);


const char  *ngx_http_commerce_redis_cache_prefixes[] = {
    COMMERCE_RK_ITEM,
    COMMERCE_RK_STOCK,
    NULL
};


static ngx_http_commerce_redis_cache_t  ngx_http_commerce_redis_cache;


void
ngx_http_commerce_redis_cache_init(size_t size, ngx_msec_t valid,
    ngx_log_t *log)
{
    ngx_uint_t                        n;
    ngx_http_commerce_redis_cache_t  *c;

    c = &ngx_http_commerce_redis_cache;

    ngx_queue_init(&c->lru);

    n = NGX_HTTP_COMMERCE_REDIS_CACHE_MIN_BUCKETS;
    while (n < size / NGX_HTTP_COMMERCE_REDIS_CACHE_BUCKET_BYTES) {
        n *= 2;
    }

    c->buckets = NULL;
    c->nbuckets = n;
    c->nkeys = 0;

    if (size) {
        c->buckets = ngx_calloc(n * sizeof(*c->buckets), log);
        if (c->buckets == NULL) {
            size = 0;   /* no memory: the cache stays off */
        }
    }

    c->max = size;
    c->used = 0;
    c->valid = valid;
    c->log = log;
    c->ready = 0;
}


ngx_int_t
ngx_http_commerce_redis_cache_get(ngx_http_commerce_redis_cmd_t *cmd,
    ngx_str_t *value)
{
    uint32_t                                fhash;
    uint64_t                                hash;
    ngx_str_t                               key, field;
    ngx_uint_t                              hget;
    ngx_http_commerce_redis_cache_t        *c;
    ngx_http_commerce_redis_cache_key_t    *k;
    ngx_http_commerce_redis_cache_entry_t  *e;

    c = &ngx_http_commerce_redis_cache;
    cmd->fill = NULL;

    if (!c->ready) {
        return NGX_DECLINED;
    }

    if (ngx_http_commerce_redis_cache_cmd(cmd, &key, &field) != NGX_OK) {
        return NGX_DECLINED;
    }

    hget = (cmd->argc == 3);
    hash = ngx_http_commerce_hash64(key.data, key.len);
    k = ngx_http_commerce_redis_cache_key_find(&key, hash);
    e = NULL;

    if (k) {
        fhash = ngx_crc32_short(field.data, field.len);
        e = (ngx_http_commerce_redis_cache_entry_t *)
                ngx_str_rbtree_lookup(&k->fields, &field, fhash);
    }

    if (e) {
        if (!e->filled || e->hget != hget) {
            /* a reply on its way fills it: this one is not kept */
            return NGX_DECLINED;
        }

        if ((ngx_msec_int_t) (e->expires - ngx_current_msec) > 0) {
            e->used = 1;

            value->data = e->value;
            value->len = e->len;
            return NGX_OK;
        }

        ngx_http_commerce_redis_cache_drop(e);
        k = ngx_http_commerce_redis_cache_key_find(&key, hash);
    }

    cmd->fill = ngx_http_commerce_redis_cache_add(k, &key, hash, &field,
                                                  hget);

    return NGX_DECLINED;
}


static ngx_http_commerce_redis_cache_key_t *
ngx_http_commerce_redis_cache_key_find(ngx_str_t *key, uint64_t hash)
{
    ngx_http_commerce_redis_cache_t      *c;
    ngx_http_commerce_redis_cache_key_t  *k;

    c = &ngx_http_commerce_redis_cache;

    for (k = c->buckets[hash & (c->nbuckets - 1)]; k; k = k->next) {
        if (k->hash == hash && k->name.len == key->len
            && ngx_memcmp(k->name.data, key->data, key->len) == 0)
        {
            return k;
        }
    }

    return NULL;
}


static void
ngx_http_commerce_redis_cache_key_insert(
    ngx_http_commerce_redis_cache_key_t *k)
{
    ngx_http_commerce_redis_cache_t       *c;
    ngx_http_commerce_redis_cache_key_t  **b;

    c = &ngx_http_commerce_redis_cache;

    if (c->nkeys >= 2 * c->nbuckets) {
        ngx_http_commerce_redis_cache_grow();
    }

    b = &c->buckets[k->hash & (c->nbuckets - 1)];
    k->next = *b;
    *b = k;
    c->nkeys++;
}


static void
ngx_http_commerce_redis_cache_key_remove(
    ngx_http_commerce_redis_cache_key_t *k)
{
    ngx_http_commerce_redis_cache_t       *c;
    ngx_http_commerce_redis_cache_key_t  **b;

    c = &ngx_http_commerce_redis_cache;

    for (b = &c->buckets[k->hash & (c->nbuckets - 1)]; *b; b = &(*b)->next) {
        if (*b == k) {
            *b = k->next;
            c->nkeys--;
            return;
        }
    }
}


/* Twice the buckets; without the memory, longer chains in the old ones. */
static void
ngx_http_commerce_redis_cache_grow(void)
{
    ngx_uint_t                             i, n;
    ngx_http_commerce_redis_cache_t       *c;
    ngx_http_commerce_redis_cache_key_t   *k, *next, **buckets;

    c = &ngx_http_commerce_redis_cache;
    n = c->nbuckets * 2;

    buckets = ngx_calloc(n * sizeof(*buckets), c->log);
    if (buckets == NULL) {
        return;
    }

    for (i = 0; i < c->nbuckets; i++) {
        for (k = c->buckets[i]; k; k = next) {
            next = k->next;
            k->next = buckets[k->hash & (n - 1)];
            buckets[k->hash & (n - 1)] = k;
        }
    }

    ngx_free(c->buckets);
    c->buckets = buckets;
    c->nbuckets = n;
}


/*
 * GET <key> or HGET <key> <field> of a tracked prefix: only their keys
 * are sure to be invalidated.
 */
static ngx_int_t
ngx_http_commerce_redis_cache_cmd(ngx_http_commerce_redis_cmd_t *cmd,
    ngx_str_t *key, ngx_str_t *field)
{
    size_t        n;
    const char  **p;

    if (cmd->argc == 2 && cmd->argvlen[0] == 3
        && ngx_strncmp(cmd->argv[0], "GET", 3) == 0)
    {
        /* empty, but never NULL: it is copied and compared */
        ngx_str_set(field, "");

    } else if (cmd->argc == 3 && cmd->argvlen[0] == 4
               && ngx_strncmp(cmd->argv[0], "HGET", 4) == 0)
    {
        field->data = (u_char *) cmd->argv[2];
        field->len = cmd->argvlen[2];

    } else {
        return NGX_DECLINED;
    }

    key->data = (u_char *) cmd->argv[1];
    key->len = cmd->argvlen[1];

    for (p = ngx_http_commerce_redis_cache_prefixes; *p; p++) {
        n = ngx_strlen(*p);

        if (key->len > n && ngx_strncmp(key->data, *p, n) == 0) {
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* A placeholder for the reply of a miss; NULL if there is no memory. */
static ngx_http_commerce_redis_cache_entry_t *
ngx_http_commerce_redis_cache_add(ngx_http_commerce_redis_cache_key_t *k,
    ngx_str_t *key, uint64_t hash, ngx_str_t *field, ngx_uint_t hget)
{
    ngx_http_commerce_redis_cache_t        *c;
    ngx_http_commerce_redis_cache_entry_t  *e;

    c = &ngx_http_commerce_redis_cache;

    if (k == NULL) {
        k = ngx_alloc(sizeof(ngx_http_commerce_redis_cache_key_t) + key->len,
                      c->log);
        if (k == NULL) {
            return NULL;
        }

        k->name.data = (u_char *) (k + 1);
        k->name.len = key->len;
        ngx_memcpy(k->name.data, key->data, key->len);
        k->hash = hash;

        ngx_rbtree_init(&k->fields, &k->sentinel,
                        ngx_str_rbtree_insert_value);
        ngx_http_commerce_redis_cache_key_insert(k);
    }

    e = ngx_alloc(sizeof(ngx_http_commerce_redis_cache_entry_t) + field->len,
                  c->log);
    if (e == NULL) {
        if (k->fields.root == k->fields.sentinel) {
            ngx_http_commerce_redis_cache_key_remove(k);
            ngx_free(k);
        }

        return NULL;
    }

    ngx_memzero(e, sizeof(ngx_http_commerce_redis_cache_entry_t));

    e->sn.str.data = (u_char *) (e + 1);
    e->sn.str.len = field->len;
    ngx_memcpy(e->sn.str.data, field->data, field->len);
    e->sn.node.key = ngx_crc32_short(field->data, field->len);

    e->owner = k;
    e->hget = hget;
    e->pending = 1;
    e->size = sizeof(ngx_http_commerce_redis_cache_entry_t) + field->len
              + sizeof(ngx_http_commerce_redis_cache_key_t) + key->len;

    ngx_rbtree_insert(&k->fields, &e->sn.node);
    ngx_queue_insert_head(&c->lru, &e->lru);
    c->used += e->size;

    ngx_http_commerce_redis_cache_evict();

    return e;
}


void
ngx_http_commerce_redis_cache_fill(ngx_http_commerce_redis_cache_entry_t *e,
    redisReply *reply)
{
    ngx_http_commerce_redis_cache_t  *c;

    c = &ngx_http_commerce_redis_cache;
    e->pending = 0;

    if (e->owner == NULL) {
        /* dropped while its command was out: the reply may be stale */
        ngx_free(e);
        return;
    }

    if (reply == NULL
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL)
        || reply->len > c->max / 16)
    {
        ngx_http_commerce_redis_cache_drop(e);
        return;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        e->value = ngx_alloc(reply->len ? reply->len : 1, c->log);
        if (e->value == NULL) {
            ngx_http_commerce_redis_cache_drop(e);
            return;
        }

        ngx_memcpy(e->value, reply->str, reply->len);
        e->len = reply->len;
        e->size += reply->len;
        c->used += reply->len;
    }

    e->filled = 1;
    e->expires = ngx_current_msec + c->valid;

    ngx_http_commerce_redis_cache_evict();
}


/*
 * Takes e out of the cache, and its key with its last field.  An entry
 * whose command is still out is freed when its reply comes.
 */
static void
ngx_http_commerce_redis_cache_drop(ngx_http_commerce_redis_cache_entry_t *e)
{
    ngx_http_commerce_redis_cache_t      *c;
    ngx_http_commerce_redis_cache_key_t  *k;

    c = &ngx_http_commerce_redis_cache;
    k = e->owner;

    ngx_rbtree_delete(&k->fields, &e->sn.node);
    ngx_queue_remove(&e->lru);
    c->used -= e->size;
    e->owner = NULL;

    if (k->fields.root == k->fields.sentinel) {
        ngx_http_commerce_redis_cache_key_remove(k);
        ngx_free(k);
    }

    if (e->value) {
        ngx_free(e->value);
        e->value = NULL;
    }

    if (!e->pending) {
        ngx_free(e);
    }
}


/*
 * Entries from the tail go until the cache fits its size; one hit since
 * it was queued sends an entry back to the head, once.  Each entry is
 * looked at twice at most: the ones sent back are behind the others.
 */
static void
ngx_http_commerce_redis_cache_evict(void)
{
    ngx_uint_t                              wrapped;
    ngx_queue_t                            *q, *prev, *sentinel;
    ngx_http_commerce_redis_cache_t        *c;
    ngx_http_commerce_redis_cache_entry_t  *e;

    c = &ngx_http_commerce_redis_cache;
    sentinel = ngx_queue_sentinel(&c->lru);
    q = ngx_queue_last(&c->lru);
    wrapped = 0;

    while (c->used > c->max && q != sentinel) {
        prev = ngx_queue_prev(q);
        e = ngx_queue_data(q, ngx_http_commerce_redis_cache_entry_t, lru);

        if (e->used) {
            e->used = 0;
            ngx_queue_remove(q);
            ngx_queue_insert_head(&c->lru, q);

        } else if (!e->pending) {
            ngx_http_commerce_redis_cache_drop(e);
        }

        if (prev == sentinel && !wrapped) {
            /* the second pass finds no mark: nothing was read meanwhile */
            wrapped = 1;
            prev = ngx_queue_last(&c->lru);
        }

        q = prev;
    }
}


void
ngx_http_commerce_redis_cache_ready(ngx_uint_t ready)
{
    ngx_http_commerce_redis_cache_t  *c;

    c = &ngx_http_commerce_redis_cache;

    if (!ready && c->ready) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "commerce redis: read cache off until tracking "
                      "is back");
    }

    c->ready = (c->max && ready);

    if (!ready) {
        ngx_http_commerce_redis_cache_invalidate(NULL, 0);
    }
}


void
ngx_http_commerce_redis_cache_invalidate(u_char *key, size_t len)
{
    ngx_str_t                               name;
    ngx_queue_t                            *q;
    ngx_rbtree_node_t                      *node;
    ngx_http_commerce_redis_cache_t        *c;
    ngx_http_commerce_redis_cache_key_t    *k;
    ngx_http_commerce_redis_cache_entry_t  *e;

    c = &ngx_http_commerce_redis_cache;

    if (key == NULL) {
        while (!ngx_queue_empty(&c->lru)) {
            q = ngx_queue_head(&c->lru);
            e = ngx_queue_data(q, ngx_http_commerce_redis_cache_entry_t, lru);
            ngx_http_commerce_redis_cache_drop(e);
        }

        return;
    }

    name.data = key;
    name.len = len;

    if (c->buckets == NULL) {
        return;
    }

    k = ngx_http_commerce_redis_cache_key_find(&name,
                                     ngx_http_commerce_hash64(key, len));
    if (k == NULL) {
        return;
    }

    /* the key node goes with its last field */

    for ( ;; ) {
        node = k->fields.root;
        e = (ngx_http_commerce_redis_cache_entry_t *) node;

        if (node->left == k->fields.sentinel
            && node->right == k->fields.sentinel)
        {
            ngx_http_commerce_redis_cache_drop(e);
            return;
        }

        ngx_http_commerce_redis_cache_drop(e);
    }
}

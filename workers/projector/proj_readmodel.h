/*
 * proj_readmodel: the outbox sink that writes the Redis read model
 * (docs/contract.md): values rendered in PostgreSQL (views rm_item_docs
 * and rm_stock_values) or by the committing batch, written behind a
 * version guard run atomically in Redis, so that a value never replaces
 * a newer one, whichever projector or drain writes last. Rows 'redis'
 * (one value) and 'redis_keys' (a batch's values, proj_effects.h).
 *
 * The read-model thread is handed each batch's 'redis_keys' row in
 * memory right after its commit (proj_readmodel_write_keys; the drain is
 * the safety net for rows of a crash or of a failed write), and
 * --rebuild writes every value rendered from PostgreSQL.
 *
 * Use:
 *
 *   rm = proj_readmodel_new(pg, redis, &metrics);
 *   proj_readmodel_sink(rm, &sink);        then proj_outbox_new(.., &sink)
 *   n = proj_readmodel_write_keys(rm, keys_json, err, errlen);
 *   proj_readmodel_rebuild(rm, stop);
 *   proj_readmodel_free(rm);
 */

#ifndef PROJ_READMODEL_H
#define PROJ_READMODEL_H

#include "cw_pg.h"
#include "cw_redis.h"
#include "proj_outbox.h"


typedef struct proj_readmodel_s  proj_readmodel_t;


/* pg renders the values (the drain's connection); redis is written. */
proj_readmodel_t *proj_readmodel_new(cw_pg_t *pg, cw_redis_t *redis,
    const proj_outbox_metrics_t *metrics);
void proj_readmodel_free(proj_readmodel_t *rm);

void proj_readmodel_sink(proj_readmodel_t *rm, proj_outbox_sink_t *sink);

/* Writes the values of a 'redis_keys' payload a batch of this process
 * just committed (the row itself is left to proj_outbox_forget).
 * Returns the number of values, or -1. */
int proj_readmodel_write_keys(proj_readmodel_t *rm, const char *keys,
    char *err, size_t errlen);

/* Writes every value rendered from PostgreSQL, guarded like live
 * writes. Returns 0 or -1. */
int proj_readmodel_rebuild(proj_readmodel_t *rm, volatile int *stop);


#endif /* PROJ_READMODEL_H */

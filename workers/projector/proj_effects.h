/*
 * proj_effects: what one attempt of a batch leaves for after its commit,
 * gathered while its commands are applied and written as two outbox rows
 * at its end, in the same transaction:
 *
 *   'kafka_batch'  every event of the batch, framed (proj_event.h), for
 *                  the publisher;
 *   'redis_keys'   the read-model values it changed, for the read-model
 *                  writer: {"items":[id...],"stocks":[[store,sku]...],
 *                  "skus":[sku...],"values":[[key,field,version,value,
 *                  price_version]...]}: items, stock values and the
 *                  values of skus in every store that has them to render
 *                  from the committed rows (a price changed), and values
 *                  rendered already (stock levels the batch wrote), with
 *                  the versions of the prices they show added up, which
 *                  the writer compares with the committed ones: a price
 *                  another projector committed meanwhile renders the
 *                  value again (proj_readmodel.c).
 *
 * With the counters of the attempt. A savepoint that is rolled back
 * takes back what was gathered since its mark; the sets of items and
 * stock levels to render may keep entries (rendering a row that did not
 * change writes the value Redis has).
 *
 * Use:
 *
 *   proj_effects_reset(&fx);                     at each attempt
 *   proj_effects_event(&fx, msg, &ev);
 *   proj_effects_item(&fx, id);       proj_effects_sku(&fx, sku); ...
 *   proj_effects_mark(&fx, &mark) ... proj_effects_rollback(&fx, &mark);
 *   proj_effects_write(&fx, pg, topic, err, errlen);     at its end
 *   id = proj_effects_take_keys(&fx, &json);    once it committed
 */

#ifndef PROJ_EFFECTS_H
#define PROJ_EFFECTS_H

#include <jansson.h>

#include "cw_buf.h"
#include "cw_pg.h"
#include "proj_event.h"


typedef struct {
    json_t         *items;        /* set: item id -> true */
    json_t         *stocks;       /* set: store "\n" sku -> [store, sku] */
    json_t         *skus;         /* set: sku -> true, in every store */
    cw_buf_t        frames;       /* the events, framed */
    size_t          nframes;
    cw_buf_t        values;       /* rendered values, JSON, comma-joined */
    cw_buf_t        scratch;
    int             oom;          /* a set could not be added to */

    long long       applied;      /* messages */
    long long       duplicates;
    long long       skipped;      /* fenced */
    long long       dead;
    long long       events;
    long long       stale;        /* commands older than the stored state */

    /* The 'redis_keys' row written (id 0: none), and its payload. */
    long long       keys_id;
    char           *keys_json;
} proj_effects_t;

typedef struct {
    size_t          frames;
    size_t          nframes;
    size_t          values;
    long long       events;
    long long       stale;
} proj_effects_mark_t;


/* Starts an attempt (the first call also initialises fx, which must be
 * zeroed). Returns 0, or -1 when out of memory. */
int proj_effects_reset(proj_effects_t *fx);
void proj_effects_free(proj_effects_t *fx);

void proj_effects_mark(const proj_effects_t *fx, proj_effects_mark_t *mark);
void proj_effects_rollback(proj_effects_t *fx,
    const proj_effects_mark_t *mark);

/* An event recorded (counted and framed for Kafka). */
void proj_effects_event(proj_effects_t *fx, proj_msg_t *msg,
    const proj_event_t *ev);

/* A value to render after the commit: an item's document, a stock
 * level's value, the values of a sku in every store that has it then. */
void proj_effects_item(proj_effects_t *fx, const char *id);
void proj_effects_stock(proj_effects_t *fx, const char *store,
    const char *sku);
void proj_effects_sku(proj_effects_t *fx, const char *sku);

/* A stock level's value rendered already (proj_stock_value), showing
 * prices whose versions add up to price_version. */
void proj_effects_stock_value(proj_effects_t *fx, const char *store,
    const char *sku, long long version, long long price_version,
    const char *value);

/* Writes the two outbox rows (each only if not empty). */
cw_pg_class_t proj_effects_write(proj_effects_t *fx, cw_pg_t *pg,
    const char *events_topic, char *err, size_t errlen);

/* The 'redis_keys' row of the attempt that committed: its id (0: none)
 * and in *json its payload, which the caller now owns (free()). */
long long proj_effects_take_keys(proj_effects_t *fx, char **json);


#endif /* PROJ_EFFECTS_H */

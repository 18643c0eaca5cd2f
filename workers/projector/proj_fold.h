/*
 * proj_fold: the rules of stock and price commands, as pure functions
 * over the state they change (no I/O), and the JSON of their events and
 * of the stock read-model value. Both apply paths of the store fold
 * every command through these, one command at a time in batch order;
 * t/unit/test_proj_fold.c tests them.
 *
 * Use:
 *
 *   proj_stock_level_t  lv = { .exists = 0, .ts_us = -1 };
 *   proj_stock_change_t ch;
 *
 *   if (proj_stock_fold(&lv, &cmd, &ch) == PROJ_FOLD_APPLIED) {
 *       proj_stock_event_data(&buf, &cmd, &lv, &ch);
 *       if (ch.orderability) proj_orderability_event_data(&buf, ...);
 *   }
 */

#ifndef PROJ_FOLD_H
#define PROJ_FOLD_H

#include <stddef.h>

#include "cw_buf.h"
#include "proj_msg.h"


typedef enum {
    PROJ_FOLD_APPLIED = 0,
    PROJ_FOLD_STALE,              /* older than the stored state: ignored */
    PROJ_FOLD_UNDERFLOW           /* would take on_hand below zero */
} proj_fold_rc_t;


/* A stock level (store, sku) as the fold goes. */
typedef struct {
    int             exists;
    long long       on_hand;
    long long       reserved;
    long long       version;
    long long       ts_us;        /* source_ts in microseconds; -1: none */
    const char     *as_of;        /* the latest as_of applied; NULL: keep */
    long long       shortfall;    /* demand reserved does not cover */
} proj_stock_level_t;

/* stock.set (absolute: qty is the count) or stock.adjust (qty is the
 * movement). Strings point into the message's commands. */
typedef struct {
    /* What the fold reads. */
    const char     *store;
    const char     *sku;
    const char     *reason;       /* "count" for stock.set */
    const char     *as_of;        /* NULL: none */
    long long       as_of_us;     /* as_of in microseconds; -1: none */
    long long       qty;
    int             absolute;

    /* What the store carries along: its events' ids and occurred_at,
     * the index of its level among the batch's, its message. */
    char            id[37];       /* inventory.stock.changed */
    char            oid[37];      /* inventory.orderability.changed */
    char            ts[32];
    size_t          key;
    proj_msg_t     *msg;
} proj_stock_cmd_t;

/* What an applied stock command changed. */
typedef struct {
    long long       delta;        /* on_hand after - before (0 if none) */
    int             orderable;    /* available > 0 after */
    int             orderability; /* orderable changed: an event too */
    long long       reserved_delta;   /* reserved after - before */
} proj_stock_change_t;


/* A price row (sku, store; "" for the base price) as the fold goes. */
typedef struct {
    int             exists;
    long long       version;
    long long       ts_us;        /* source_ts in microseconds; -1: none */
    const char     *as_of;        /* the latest as_of applied; NULL: keep */
    long long       amount;       /* minor units */
    const char     *currency;
} proj_price_row_t;

/* price.set. Strings point into the message's commands. */
typedef struct {
    /* What the fold reads. */
    const char     *sku;
    const char     *store;        /* "" for the base price */
    const char     *currency;
    const char     *as_of;        /* NULL: none */
    long long       as_of_us;     /* -1: none */
    long long       amount;

    /* What the store carries along (see proj_stock_cmd_t), and its
     * event's data (malloc()ed). */
    char            id[37];
    char            ts[32];
    size_t          key;
    proj_msg_t     *msg;
    char           *data;
} proj_price_cmd_t;


/* Folds a stock command over its level: a count older than the stored
 * one is stale; a movement below zero (or of a level that does not
 * exist, unless it adds) underflows; otherwise the level changes, its
 * version goes up (a new level starts at 1), reserved becomes the part
 * of the reservations' demand (reserved + shortfall, which the fold never
 * changes) that on_hand covers, and shortfall the rest (as in
 * sql/012_sagas.sql), and ch says what changed. The level is left as
 * it was unless applied. */
proj_fold_rc_t proj_stock_fold(proj_stock_level_t *lv,
    const proj_stock_cmd_t *cmd, proj_stock_change_t *ch);

/* Folds a price command over its row: older than the stored one is
 * stale; otherwise the row takes the price and its version goes up. */
proj_fold_rc_t proj_price_fold(proj_price_row_t *row,
    const proj_price_cmd_t *cmd);

/* The data of inventory.stock.changed, of an applied command and the
 * level it left: {"store_id","sku","on_hand","reserved","available",
 * "delta","movement","reason","orderable"}. */
void proj_stock_event_data(cw_buf_t *b, const proj_stock_cmd_t *cmd,
    const proj_stock_level_t *lv, const proj_stock_change_t *ch);

/* The data of inventory.orderability.changed: {"store_id","sku",
 * "orderable","available"}. */
void proj_orderability_event_data(cw_buf_t *b, const proj_stock_cmd_t *cmd,
    const proj_stock_level_t *lv);

/* The data of pricing.price.updated: {"sku","store_id" (null for the
 * base price),"price":{"amount","currency"}}; amount as the command
 * gave it. */
void proj_price_event_data(cw_buf_t *b, const char *sku, const char *store,
    const char *amount, const char *currency);

/* The read-model value of a stock level, byte for byte as the SQL view
 * rm_stock_values renders it and proj_json_compact compacts it: sku_json
 * and price (NULL: none) as PostgreSQL writes them (to_json, and
 * commerce_money), updated_at as commerce_ts does; version is the
 * value's (the level's and its prices' versions added up). Returns the
 * value (malloc()ed), or NULL when out of memory. */
char *proj_stock_value(const char *sku_json, const proj_stock_level_t *lv,
    long long version, const char *updated_at, const char *price);


#endif /* PROJ_FOLD_H */

/*
 * proj_fold: the stock and price rules (see proj_fold.h).
 */

#include <stdlib.h>

#include "proj_fold.h"
#include "proj_util.h"


/* A state stamped by its source at ts_us, and a command stamped at
 * as_of_us: the command is older, so it changes nothing. Either stamp
 * missing: not older. */
static int
proj_fold_older(int exists, long long ts_us, long long as_of_us)
{
    return exists && as_of_us >= 0 && ts_us >= 0 && as_of_us < ts_us;
}


proj_fold_rc_t
proj_stock_fold(proj_stock_level_t *lv, const proj_stock_cmd_t *cmd,
    proj_stock_change_t *ch)
{
    int        was;
    long long  before, reserved, demand;

    before = lv->exists ? lv->on_hand : 0;
    reserved = lv->exists ? lv->reserved : 0;
    demand = lv->exists ? lv->reserved + lv->shortfall : 0;
    was = lv->exists && lv->on_hand - lv->reserved > 0;

    if (cmd->absolute) {
        if (proj_fold_older(lv->exists, lv->ts_us, cmd->as_of_us)) {
            return PROJ_FOLD_STALE;
        }
        lv->on_hand = cmd->qty;
        if (cmd->as_of_us >= 0) {
            lv->ts_us = cmd->as_of_us;
            lv->as_of = cmd->as_of;
        }

    } else if (cmd->qty > 0) {
        lv->on_hand = before + cmd->qty;

    } else {
        if (!lv->exists || lv->on_hand + cmd->qty < 0) {
            return PROJ_FOLD_UNDERFLOW;
        }
        lv->on_hand += cmd->qty;
    }

    if (lv->exists) {
        lv->version++;

    } else {
        lv->exists = 1;
        lv->version = 1;                    /* the columns' defaults */
    }

    /* The reservations' demand that on_hand no longer covers is short,
     * and stock that comes back covers it first (sql/012_sagas.sql). */
    lv->reserved = demand < lv->on_hand ? demand : lv->on_hand;
    lv->shortfall = demand - lv->reserved;

    ch->delta = lv->on_hand - before;
    ch->reserved_delta = lv->reserved - reserved;
    ch->orderable = lv->on_hand - lv->reserved > 0;
    ch->orderability = ch->orderable != was;

    return PROJ_FOLD_APPLIED;
}


proj_fold_rc_t
proj_price_fold(proj_price_row_t *row, const proj_price_cmd_t *cmd)
{
    if (proj_fold_older(row->exists, row->ts_us, cmd->as_of_us)) {
        return PROJ_FOLD_STALE;
    }

    row->version = row->exists ? row->version + 1 : 1;
    row->exists = 1;
    row->amount = cmd->amount;
    row->currency = cmd->currency;

    if (cmd->as_of_us >= 0) {
        row->ts_us = cmd->as_of_us;
        row->as_of = cmd->as_of;
    }

    return PROJ_FOLD_APPLIED;
}


/* {"store_id":..,"sku":.. */
static void
proj_fold_stock_key(cw_buf_t *b, const proj_stock_cmd_t *cmd)
{
    cw_buf_puts(b, "{\"store_id\":");
    cw_buf_json_str(b, cmd->store);
    cw_buf_puts(b, ",\"sku\":");
    cw_buf_json_str(b, cmd->sku);
}


void
proj_stock_event_data(cw_buf_t *b, const proj_stock_cmd_t *cmd,
    const proj_stock_level_t *lv, const proj_stock_change_t *ch)
{
    proj_fold_stock_key(b, cmd);
    cw_buf_printf(b, ",\"on_hand\":%lld,\"reserved\":%lld,"
                  "\"available\":%lld,\"delta\":%lld,\"movement\":\"%s\","
                  "\"reason\":", lv->on_hand, lv->reserved,
                  lv->on_hand - lv->reserved, ch->delta,
                  cmd->absolute ? "set" : "adjust");
    proj_json_str_or_null(b, cmd->reason);
    cw_buf_printf(b, ",\"orderable\":%s}",
                  ch->orderable ? "true" : "false");
}


void
proj_orderability_event_data(cw_buf_t *b, const proj_stock_cmd_t *cmd,
    const proj_stock_level_t *lv)
{
    proj_fold_stock_key(b, cmd);
    cw_buf_printf(b, ",\"orderable\":%s,\"available\":%lld}",
                  lv->on_hand - lv->reserved > 0 ? "true" : "false",
                  lv->on_hand - lv->reserved);
}


void
proj_price_event_data(cw_buf_t *b, const char *sku, const char *store,
    const char *amount, const char *currency)
{
    cw_buf_puts(b, "{\"sku\":");
    cw_buf_json_str(b, sku);
    cw_buf_puts(b, ",\"store_id\":");
    proj_json_str_or_null(b, store);
    cw_buf_puts(b, ",\"price\":{\"amount\":");
    proj_json_str_or_null(b, amount);
    cw_buf_puts(b, ",\"currency\":");
    proj_json_str_or_null(b, currency);
    cw_buf_puts(b, "}}");
}


char *
proj_stock_value(const char *sku_json, const proj_stock_level_t *lv,
    long long version, const char *updated_at, const char *price)
{
    char      *value;
    cw_buf_t   v;

    cw_buf_init(&v);
    cw_buf_puts(&v, "{\"sku\":");
    cw_buf_puts(&v, sku_json);
    cw_buf_printf(&v, ",\"on_hand\":%lld,\"reserved\":%lld,"
                  "\"available\":%lld,\"orderable\":%s,\"version\":%lld,"
                  "\"updated_at\":\"%s\",\"price\":%s}", lv->on_hand,
                  lv->reserved, lv->on_hand - lv->reserved,
                  lv->on_hand - lv->reserved > 0 ? "true" : "false",
                  version, updated_at, price != NULL ? price : "null");

    value = v.oom ? NULL : proj_json_compact(v.data, v.len);
    cw_buf_free(&v);

    return value;
}

/*
 * proj_known: a price or stock command for a sku that no item has is
 * not applied, and not refused for good either: sources send updates
 * out of order (inventory before the product), so its message is
 * parked. Before a batch is applied, the skus its price and stock
 * commands name are looked up in the catalog (variants) in one
 * statement; a message naming one that neither the catalog nor an item
 * upsert earlier in the batch has loses its commands for the batch and
 * is dead-lettered with reason unknown_sku, waiting for that sku
 * (dead_letters.waiting_for, sql/010). The item upsert that brings the
 * sku puts the message back on its topic (proj_apply.c, statement
 * RELEASE). Skus given by vendor references are resolved later, and
 * checked by their mappings (unmapped_reference).
 *
 * Use (once per attempt, after the offsets are locked):
 *
 *   cls = proj_known_check(t, err, errlen);
 *   ... parked messages have cmds NULL, err unknown_sku, waiting set ...
 */

#ifndef PROJ_KNOWN_H
#define PROJ_KNOWN_H

#include "proj_batch.h"


cw_pg_class_t proj_known_check(proj_txn_t *t, char *err, size_t errlen);


#endif /* PROJ_KNOWN_H */

/*
 * proj_sql: every SQL statement of the projector's store, by id, with the
 * names of its parameters and of its result's columns beside it.
 *
 * The texts are in proj_sql.c, in the same order. Every statement is
 * prepared on its connection once (again after every reconnect); the
 * lookups by arrays of keys (the STATE ones) are also run with their
 * values written in (cw_pg_exec_inline) when the keys are many, so that
 * each is planned for their real number (proj_keys_state). Array
 * parameters are PostgreSQL array literals (proj_arr) unless said
 * otherwise. The Kafka log's positions (offsets, the archive, dead
 * letters, position dedup keys) are those of one cluster: statements
 * about them name it, written in when they are prepared
 * (proj_sql_set_cluster first).
 *
 * Use:
 *
 *   p[PROJ_OFF_LOAD_GROUP] = group;
 *   p[PROJ_OFF_LOAD_TOPIC] = topic;
 *   res = cw_pg_execp(pg, proj_sql_name(PROJ_SQL_OFF_LOAD),
 *                     PROJ_OFF_LOAD_NPARAMS, p, &cls, err, errlen);
 *   next = atoll(PQgetvalue(res, i, PROJ_OFF_LOAD_NEXT));
 */

#ifndef PROJ_SQL_H
#define PROJ_SQL_H

#include "cw_pg.h"


typedef enum {
    PROJ_SQL_OFF_ENSURE = 0,
    PROJ_SQL_OFF_LOCK,
    PROJ_SQL_OFF_SET,
    PROJ_SQL_OFF_LOAD,
    PROJ_SQL_OFF_ADOPT,
    PROJ_SQL_CLAIM,
    PROJ_SQL_CLAIM_ALL,
    PROJ_SQL_DEAD,
    PROJ_SQL_KNOWN,
    PROJ_SQL_RELEASE,
    PROJ_SQL_MAP_GET,
    PROJ_SQL_MAP_PUT,
    PROJ_SQL_STORE_PUT,
    PROJ_SQL_ITEM,
    PROJ_SQL_STOCK_STATE,
    PROJ_SQL_AS_OF,
    PROJ_SQL_STOCK_WRITE,
    PROJ_SQL_PRICE_STATE,
    PROJ_SQL_PRICE_WRITE,
    PROJ_SQL_EVENTS_ROW,
    PROJ_SQL_KEYS_ROW,
    PROJ_SQL_ARCHIVE,
    PROJ_SQL_N
} proj_sql_id_t;


/* OFF_ENSURE: creates the offset rows of a batch's partitions that are
 * not there yet, at the partition's first offset in the batch. */
enum {
    PROJ_OFF_ENSURE_GROUP = 0,
    PROJ_OFF_ENSURE_TOPICS,
    PROJ_OFF_ENSURE_PARTITIONS,
    PROJ_OFF_ENSURE_FIRST,
    PROJ_OFF_ENSURE_NPARAMS
};

/* OFF_LOCK: locks them, in key order; returns each row. */
enum {
    PROJ_OFF_LOCK_GROUP = 0,
    PROJ_OFF_LOCK_TOPICS,
    PROJ_OFF_LOCK_PARTITIONS,
    PROJ_OFF_LOCK_NPARAMS
};
enum { PROJ_OFF_LOCK_TOPIC = 0, PROJ_OFF_LOCK_PARTITION, PROJ_OFF_LOCK_NEXT };

/* OFF_SET: the next offset of each partition. */
enum {
    PROJ_OFF_SET_GROUP = 0,
    PROJ_OFF_SET_TOPICS,
    PROJ_OFF_SET_PARTITIONS,
    PROJ_OFF_SET_NEXT,
    PROJ_OFF_SET_NPARAMS
};

/* OFF_LOAD: the stored offsets of a topic's partitions. */
enum { PROJ_OFF_LOAD_GROUP = 0, PROJ_OFF_LOAD_TOPIC, PROJ_OFF_LOAD_NPARAMS };
enum { PROJ_OFF_LOAD_PARTITION = 0, PROJ_OFF_LOAD_NEXT };

/* OFF_ADOPT: the group's offsets of no cluster (stored before 011) taken
 * as this cluster's, unless it has some. */
enum { PROJ_OFF_ADOPT_GROUP = 0, PROJ_OFF_ADOPT_NPARAMS };

/* CLAIM: one message's dedup key (careful path); a row when claimed now,
 * none when it was claimed before. */
enum {
    PROJ_CLAIM_KEY = 0,
    PROJ_CLAIM_TOPIC,
    PROJ_CLAIM_PARTITION,
    PROJ_CLAIM_OFFSET,
    PROJ_CLAIM_COMMANDS,
    PROJ_CLAIM_NPARAMS
};

/* CLAIM_ALL: the keys of every valid message of a batch (fast path),
 * arrays in message order; returns the keys claimed now. */
enum {
    PROJ_CLAIM_ALL_KEYS = 0,
    PROJ_CLAIM_ALL_TOPICS,
    PROJ_CLAIM_ALL_PARTITIONS,
    PROJ_CLAIM_ALL_OFFSETS,
    PROJ_CLAIM_ALL_COMMANDS,
    PROJ_CLAIM_ALL_NPARAMS
};
enum { PROJ_CLAIM_ALL_KEY = 0 };

/* DEAD: a dead letter and its Kafka copy (key and body as bytea text). */
enum {
    PROJ_DEAD_TOPIC = 0,
    PROJ_DEAD_PARTITION,
    PROJ_DEAD_OFFSET,
    PROJ_DEAD_KEY,
    PROJ_DEAD_HEADERS,
    PROJ_DEAD_BODY,
    PROJ_DEAD_SOURCE,
    PROJ_DEAD_DELIVERY_ID,
    PROJ_DEAD_REASON,
    PROJ_DEAD_DETAIL,
    PROJ_DEAD_DLQ_TOPIC,
    PROJ_DEAD_WAITING,                      /* NULL, or the sku */
    PROJ_DEAD_NPARAMS
};

/* KNOWN: which of the skus (an array) are some item's variant. */
enum { PROJ_KNOWN_SKUS = 0, PROJ_KNOWN_NPARAMS };
enum { PROJ_KNOWN_SKU = 0 };

/* RELEASE: the dead letters waiting for one of the skus (an array) that
 * now exist, put back on their topic (outbox rows 'kafka') and marked
 * replayed. */
enum { PROJ_RELEASE_SKUS = 0, PROJ_RELEASE_NPARAMS };

/* MAP_GET, MAP_PUT: a source's reference to a canonical id. */
enum {
    PROJ_MAP_SOURCE = 0,
    PROJ_MAP_KIND,
    PROJ_MAP_EXTERNAL_ID,
    PROJ_MAP_GET_NPARAMS,
    PROJ_MAP_CANONICAL_ID = PROJ_MAP_GET_NPARAMS,
    PROJ_MAP_PUT_NPARAMS
};
enum { PROJ_MAP_GET_CANONICAL_ID = 0 };

/* STORE_PUT: a store (and its merchant) registered once. */
enum { PROJ_STORE_PUT_ID = 0, PROJ_STORE_PUT_MERCHANT, PROJ_STORE_PUT_NPARAMS };

/* ITEM: an item upsert whole: merchant, item, variants, addon groups,
 * the event. Returns (version, NULL), or no such row when stale, and
 * (NULL, id) for every other item a variant's sku moved from. */
enum {
    PROJ_ITEM_ID = 0,
    PROJ_ITEM_MERCHANT,
    PROJ_ITEM_SKU,
    PROJ_ITEM_NAME,
    PROJ_ITEM_DESCRIPTION,
    PROJ_ITEM_BRAND,
    PROJ_ITEM_TAGS,
    PROJ_ITEM_ATTRIBUTES,
    PROJ_ITEM_SOURCE,
    PROJ_ITEM_AS_OF,
    PROJ_ITEM_VARIANTS,
    PROJ_ITEM_ADDONS,
    PROJ_ITEM_EVENT_ID,
    PROJ_ITEM_META,
    PROJ_ITEM_CORRELATION,
    PROJ_ITEM_CAUSATION,
    PROJ_ITEM_EVENT_DATA,
    PROJ_ITEM_NPARAMS
};
enum { PROJ_ITEM_VERSION = 0, PROJ_ITEM_MOVED_FROM };

/* STOCK_STATE: per key of the batch's stock commands, in order,
 * its level (NULL columns: none), the sku as JSON and the store's
 * effective price as the read model renders them, the versions of its
 * price rows added up (0: none) and their latest updated_at as
 * commerce_ts writes it (NULL: none), and in the first row the
 * transaction's now(). */
enum { PROJ_STOCK_STATE_STORES = 0, PROJ_STOCK_STATE_SKUS,
       PROJ_STOCK_STATE_NPARAMS };
enum {
    PROJ_STOCK_STATE_ON_HAND = 0,
    PROJ_STOCK_STATE_RESERVED,
    PROJ_STOCK_STATE_SHORTFALL,
    PROJ_STOCK_STATE_VERSION,
    PROJ_STOCK_STATE_TS_US,
    PROJ_STOCK_STATE_SKU_JSON,
    PROJ_STOCK_STATE_PRICE,
    PROJ_STOCK_STATE_PRICE_VERSION,
    PROJ_STOCK_STATE_PRICE_AT,
    PROJ_STOCK_STATE_NOW
};

/* AS_OF: the instants of as_of texts (one array, NULLs allowed) in
 * microseconds, in order, as PostgreSQL reads them. */
enum { PROJ_AS_OF_TEXTS = 0, PROJ_AS_OF_NPARAMS };
enum { PROJ_AS_OF_US = 0 };

/* STOCK_WRITE: the batch's stock commands applied, as folded in C: per
 * applied command, in order, its event, ledger row and orderability
 * event (NULL id: availability did not cross zero), and what it did to
 * reserved; per key the final level (reserved and shortfall included)
 * and the version read (0: none). Returns how many levels were updated:
 * fewer than were read means one changed in between. */
enum {
    PROJ_STOCK_WRITE_STORE = 0,
    PROJ_STOCK_WRITE_SKU,
    PROJ_STOCK_WRITE_EVENT_ID,
    PROJ_STOCK_WRITE_VERSION,
    PROJ_STOCK_WRITE_ON_HAND,
    PROJ_STOCK_WRITE_DELTA,
    PROJ_STOCK_WRITE_MOVEMENT,
    PROJ_STOCK_WRITE_REASON,
    PROJ_STOCK_WRITE_AS_OF,
    PROJ_STOCK_WRITE_DATA,
    PROJ_STOCK_WRITE_META,
    PROJ_STOCK_WRITE_CORRELATION,
    PROJ_STOCK_WRITE_CAUSATION,
    PROJ_STOCK_WRITE_OEVENT_ID,
    PROJ_STOCK_WRITE_ODATA,
    PROJ_STOCK_WRITE_RESERVED_DELTA,
    PROJ_STOCK_WRITE_RESERVED,
    PROJ_STOCK_WRITE_NCMD,                  /* per command, then per key */
    PROJ_STOCK_WRITE_KEY_STORE = PROJ_STOCK_WRITE_NCMD,
    PROJ_STOCK_WRITE_KEY_SKU,
    PROJ_STOCK_WRITE_KEY_ON_HAND,
    PROJ_STOCK_WRITE_KEY_VERSION,
    PROJ_STOCK_WRITE_KEY_AS_OF,
    PROJ_STOCK_WRITE_KEY_READ,
    PROJ_STOCK_WRITE_KEY_RESERVED,
    PROJ_STOCK_WRITE_KEY_SHORTFALL,
    PROJ_STOCK_WRITE_NPARAMS
};
enum { PROJ_STOCK_WRITE_UPDATED = 0 };

/* PRICE_STATE: the existing rows of the keys of the batch's
 * price commands, locked in key order: the key's rank (1-based), its
 * version and source_ts. */
enum { PROJ_PRICE_STATE_SKUS = 0, PROJ_PRICE_STATE_STORES,
       PROJ_PRICE_STATE_NPARAMS };
enum { PROJ_PRICE_STATE_RANK = 0, PROJ_PRICE_STATE_VERSION,
       PROJ_PRICE_STATE_TS_US };

/* PRICE_WRITE: the batch's price commands applied, as folded in C: per
 * applied command its event, per key the final row, and the skus of the
 * changed base prices again for the items that show them: their versions
 * bumped (locked in id order). Returns the ids of those items, to render
 * again. */
enum {
    PROJ_PRICE_WRITE_EVENT_ID = 0,
    PROJ_PRICE_WRITE_AGGREGATE,
    PROJ_PRICE_WRITE_VERSION,
    PROJ_PRICE_WRITE_DATA,
    PROJ_PRICE_WRITE_META,
    PROJ_PRICE_WRITE_CORRELATION,
    PROJ_PRICE_WRITE_CAUSATION,
    PROJ_PRICE_WRITE_NCMD,                  /* per command, then per key */
    PROJ_PRICE_WRITE_KEY_SKU = PROJ_PRICE_WRITE_NCMD,
    PROJ_PRICE_WRITE_KEY_STORE,
    PROJ_PRICE_WRITE_KEY_AMOUNT,
    PROJ_PRICE_WRITE_KEY_CURRENCY,
    PROJ_PRICE_WRITE_KEY_VERSION,
    PROJ_PRICE_WRITE_KEY_AS_OF,
    PROJ_PRICE_WRITE_BASE_SKUS,
    PROJ_PRICE_WRITE_NPARAMS
};
enum { PROJ_PRICE_WRITE_ITEM = 0 };

/* EVENTS_ROW: the 'kafka_batch' outbox row of a batch's events (payload
 * binary: proj_frame.h). */
enum { PROJ_EVENTS_ROW_TOPIC = 0, PROJ_EVENTS_ROW_FRAMES,
       PROJ_EVENTS_ROW_NPARAMS };

/* KEYS_ROW: the 'redis_keys' outbox row of the read-model values a batch
 * changed (proj_effects.h); returns its id. */
enum { PROJ_KEYS_ROW_PAYLOAD = 0, PROJ_KEYS_ROW_NPARAMS };
enum { PROJ_KEYS_ROW_ID = 0 };

/* ARCHIVE (the archive's connection): every message of a batch byte for
 * byte: their columns as JSON records, the bodies and keys as binary
 * bytea arrays in the same order. */
enum { PROJ_ARCHIVE_RECORDS = 0, PROJ_ARCHIVE_BODIES, PROJ_ARCHIVE_KEYS,
       PROJ_ARCHIVE_NPARAMS };


#define PROJ_SQL_CLUSTER_MAX  128

/* The id of the Kafka cluster (rd_kafka_clusterid) the statements name.
 * Returns 0, or -1 if it is not an id (letters, digits, '-', '_'). */
int proj_sql_set_cluster(const char *id);

const char *proj_sql_name(proj_sql_id_t id);
const char *proj_sql_text(proj_sql_id_t id);

/* Prepares every statement of the batch connection (pg), or of the
 * archive's (side). Returns 0, or -1 with err. */
int proj_sql_prepare(cw_pg_t *pg, int side, char *err, size_t errlen);


#endif /* PROJ_SQL_H */

/*
 * proj_gauges: what the projector's counters cannot tell, measured by a
 * thread of its own every gauge_interval, off the path of the messages:
 *
 *   projector_outbox_backlog_rows         outbox rows not yet done (one
 *                                         per batch and kind: events to
 *                                         Kafka, values to Redis)
 *   projector_outbox_oldest_age_seconds   how long the oldest has waited
 *                                         (0 when the outbox is empty)
 *   projector_consumer_lag{topic,partition}
 *                                         messages of each partition this
 *                                         projector owns not yet taken
 *                                         (cw_kafka_consumer_lag); the
 *                                         series of a partition that goes
 *                                         to another projector goes
 *
 * The outbox is measured with one query (a count and the oldest
 * created_at of the small table the drainers keep emptying) on a
 * PostgreSQL connection of its own, so no drainer and no batch waits for
 * it. A failed query keeps the last values and is logged once until it
 * succeeds again.
 *
 *   g = proj_gauges_start(pg, consumer, metrics, interval_ms);
 *   ...
 *   proj_gauges_stop(g);        before the consumer is closed
 *
 * pg becomes the gauges' (freed by stop, also when start fails);
 * consumer and metrics must outlive them.
 */

#ifndef PROJ_GAUGES_H
#define PROJ_GAUGES_H

#include "cw_kafka.h"
#include "cw_metrics.h"
#include "cw_pg.h"

typedef struct proj_gauges_s  proj_gauges_t;

/* Registers the gauges and starts the thread, which measures at once,
 * then every interval_ms. NULL (logged) if it cannot. */
proj_gauges_t *proj_gauges_start(cw_pg_t *pg, cw_kafka_consumer_t *consumer,
    cw_metrics_t *metrics, int interval_ms);

/* Stops the thread and frees; NULL ignored. */
void proj_gauges_stop(proj_gauges_t *g);

#endif /* PROJ_GAUGES_H */

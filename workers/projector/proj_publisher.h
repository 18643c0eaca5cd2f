/*
 * proj_publisher: the outbox sink that publishes to Kafka: dead letters
 * (rows 'kafka': one message each, headers as JSON) and a batch's events
 * (rows 'kafka_batch': frames, proj_frame.h). A page is done once every
 * message of it is acknowledged by the broker.
 *
 * Use:
 *
 *   pub = proj_publisher_new(producer, &metrics);
 *   proj_publisher_sink(pub, &sink);      then proj_outbox_new(.., &sink)
 *   proj_publisher_free(pub);
 */

#ifndef PROJ_PUBLISHER_H
#define PROJ_PUBLISHER_H

#include "cw_kafka.h"
#include "proj_outbox.h"


typedef struct proj_publisher_s  proj_publisher_t;


proj_publisher_t *proj_publisher_new(cw_kafka_producer_t *producer,
    const proj_outbox_metrics_t *metrics);
void proj_publisher_free(proj_publisher_t *pub);

void proj_publisher_sink(proj_publisher_t *pub, proj_outbox_sink_t *sink);


#endif /* PROJ_PUBLISHER_H */

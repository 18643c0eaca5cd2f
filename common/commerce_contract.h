/*
 * commerce_contract: the names that cross a process boundary, shared by
 * the nginx module and the workers (pure C, no nginx or libpq types).
 *
 * docs/contract.md describes each: a Redis key's type and value, a
 * topic's message key and format, an event's JSON.  A name used by more
 * than one process, or written by one and read by an operator, belongs
 * here and nowhere else; SQL text built in C splices these macros in.
 *
 * Use:
 *
 *   ngx_cpymem(p, COMMERCE_RK_ITEM, COMMERCE_LEN(COMMERCE_RK_ITEM));
 *   rd_kafka_header_add(h, COMMERCE_H_SOURCE, -1, src, len);
 *   "... WHERE event_type = '" COMMERCE_EV_STOCK_CHANGED "'"
 */

#ifndef COMMERCE_CONTRACT_H
#define COMMERCE_CONTRACT_H


/* the length of a literal, without its NUL */
#define COMMERCE_LEN(lit)  (sizeof(lit) - 1)


/*
 * Redis read model, written by commerce-projector behind a version guard,
 * read by the module.
 */

/* string "cat:item:{itemId}": the item document (JSON) */
#define COMMERCE_RK_ITEM              "cat:item:"
/* sorted set: every item id, score 0, for listing in id order */
#define COMMERCE_RK_ITEM_INDEX        "cat:index"
/* hash "inv:{storeId}": sku -> the stock value (JSON) */
#define COMMERCE_RK_STOCK             "inv:"

/*
 * Redis keys of the module itself.
 */

/* string "wh:dedup:{source}:{deliveryId}": "inflight:..." while a
 * delivery is being published, "done:{partition}:{offset}" after */
#define COMMERCE_RK_WEBHOOK_DEDUP     "wh:dedup:"
#define COMMERCE_WEBHOOK_INFLIGHT     "inflight:"
#define COMMERCE_WEBHOOK_DONE         "done:"
/* string "rl:{zone}:{key}": a global rate limit's GCRA state */
#define COMMERCE_RK_RATE_LIMIT        "rl:"
/* hash "cart:{cartId}": a cart, "_owner", "_store", "_version" and
 * "i:{sku}" -> quantity for each line */
#define COMMERCE_RK_CART              "cart:"
/* hash "idem:{hex}": an Idempotency-Key's record, {hex} the SHA-256 of
 * the owner, the request's path and the key (each NUL-terminated) */
#define COMMERCE_RK_IDEMPOTENCY       "idem:"
#define COMMERCE_IDEM_INFLIGHT        "inflight"
#define COMMERCE_IDEM_DONE            "done"


/*
 * Redis read model of orders, written by the saga worker (issue 14), read
 * by the module.  Order ids are UUIDv7, so their byte order is their time
 * order: the indexes are sorted sets of ids, all with score 0, listed
 * newest first with ZREVRANGEBYLEX.
 */

/* string "ord:order:{orderId}": the order document (JSON) */
#define COMMERCE_RK_ORDER             "ord:order:"
/* sorted set "ord:user:{sub}": the user's order ids */
#define COMMERCE_RK_ORDER_USER        "ord:user:"
/* sorted set "ord:ustatus:{status}:{sub}": the user's orders in a status */
#define COMMERCE_RK_ORDER_USER_STATUS "ord:ustatus:"
/* list "ord:events:{orderId}": the order's history, oldest first (JSON) */
#define COMMERCE_RK_ORDER_EVENTS      "ord:events:"
/* string "ord:saga:{orderId}": the saga's state (JSON) */
#define COMMERCE_RK_SAGA              "ord:saga:"
/* sorted set "ord:sagas:{status}": the order ids of sagas in a status */
#define COMMERCE_RK_SAGA_INDEX        "ord:sagas:"

/* an order's status */
#define COMMERCE_ORDER_PENDING        "pending"
#define COMMERCE_ORDER_CONFIRMED      "confirmed"
#define COMMERCE_ORDER_CANCELLED      "cancelled"
#define COMMERCE_ORDER_FAILED         "failed"

/* a saga's status */
#define COMMERCE_SAGA_RUNNING         "running"
#define COMMERCE_SAGA_COMPENSATING    "compensating"
#define COMMERCE_SAGA_COMPLETED       "completed"
#define COMMERCE_SAGA_COMPENSATED     "compensated"
#define COMMERCE_SAGA_FAILED          "failed"


/*
 * Kafka topics (the defaults; each is configurable where it is used).
 */

/* webhooks as received, key: commerce_webhook_key (the source's shop or
 * store), value: the body byte for byte */
#define COMMERCE_TOPIC_INBOUND        "commerce.inbound"
/* canonical events, key: the aggregate id, value: the event JSON */
#define COMMERCE_TOPIC_EVENTS         "commerce.events"
/* dead letters: the inbound message as received, with dlq_* headers */
#define COMMERCE_TOPIC_DLQ            "commerce.dlq"
/* commands to the saga worker, key: the order id (none for
 * projections.rebuild), value: the command JSON */
#define COMMERCE_TOPIC_COMMANDS       "commerce.commands"
/* the saga worker's commands to the payment provider and to the carrier,
 * key: the order id, value: the command JSON */
#define COMMERCE_TOPIC_PAYMENT_COMMANDS   "commerce.payments.commands"
#define COMMERCE_TOPIC_SHIPPING_COMMANDS  "commerce.shipping.commands"
/* the carrier's replies to the saga worker, key: the order id, value:
 * the reply JSON */
#define COMMERCE_TOPIC_SHIPPING_REPLIES   "commerce.shipping.replies"
/* the payment provider's webhooks (Stripe events) as nginx received them
 * from the source "payments", key: the order id, value: the event JSON */
#define COMMERCE_TOPIC_PAYMENT_INBOUND    "commerce.payments.inbound"
#define COMMERCE_SOURCE_PAYMENTS          "payments"


/*
 * Kafka headers.
 */

/* of an inbound message, set by the module */
#define COMMERCE_H_SOURCE             "source"
#define COMMERCE_H_DELIVERY_ID        "delivery_id"
/* the longest delivery id, in bytes: the module refuses a longer one (400
 * delivery_id_too_long), so no message carries one (common/
 * commerce_inbound.h has the whole rule) */
#define COMMERCE_DELIVERY_ID_MAX      400
#define COMMERCE_H_SIGNATURE_SCHEME   "signature_scheme"
#define COMMERCE_H_RECEIVED_AT        "received_at"
#define COMMERCE_H_CONTENT_TYPE       "content_type"
#define COMMERCE_H_TRACEPARENT        "traceparent"
/* the provider's event topic (X-Shopify-Topic), by commerce_webhook_header */
#define COMMERCE_H_TOPIC              "topic"

/* of a command on commerce.commands, set by the module (and
 * received_at, content_type, traceparent as for a webhook) */
#define COMMERCE_H_COMMAND_TYPE       "command_type"
#define COMMERCE_H_COMMAND_ID         "command_id"
#define COMMERCE_H_SUB                "sub"
#define COMMERCE_H_IDEMPOTENCY_KEY    "idempotency_key"

/* of a participant command (command_type, idempotency_key, content_type,
 * traceparent) and of a carrier's reply: the reply's type */
#define COMMERCE_H_REPLY_TYPE         "reply_type"

/* of a canonical event, set by the projector (and traceparent) */
#define COMMERCE_H_EVENT_TYPE         "event_type"
#define COMMERCE_H_EVENT_ID           "event_id"

/* of a dead letter: the inbound headers and these */
#define COMMERCE_H_DLQ_REASON         "dlq_reason"
#define COMMERCE_H_DLQ_DETAIL         "dlq_detail"
#define COMMERCE_H_DLQ_ID             "dlq_id"
#define COMMERCE_H_DLQ_ORIGIN         "dlq_origin"
/* of a message commerce-replay put back: "dlq:{id}" */
#define COMMERCE_H_REPLAY_OF          "replay_of"
/* of a message Kafka refused for good and the projector published
 * reduced (no value, long headers left out): why ("too_large"), and the
 * size in bytes of what was refused */
#define COMMERCE_H_REDUCED            "reduced"
#define COMMERCE_H_REDUCED_BYTES      "reduced_bytes"


/*
 * Canonical events on commerce.events and in the event store: type,
 * aggregate type, and the aggregate id's prefix (its key on the topic).
 */

#define COMMERCE_EV_ITEM_UPDATED      "catalog.item.updated"
#define COMMERCE_EV_PRICE_UPDATED     "pricing.price.updated"
#define COMMERCE_EV_STOCK_CHANGED     "inventory.stock.changed"
#define COMMERCE_EV_ORDERABILITY              "inventory.orderability.changed"

/*
 * Order events of the saga worker (commerce-saga): its transitions, in
 * the event store and on commerce.events, aggregate "order", id the
 * order id.  shipment.created and shipment.cancelled are also the
 * carrier's reply types on commerce.shipping.replies (another topic).
 */
#define COMMERCE_EV_ORDER_PLACED              "order.placed"
#define COMMERCE_EV_INVENTORY_RESERVED        "inventory.reserved"
#define COMMERCE_EV_PAYMENT_AUTHORIZED        "payment.authorized"
#define COMMERCE_EV_SHIPMENT_CREATED          "shipment.created"
#define COMMERCE_EV_PAYMENT_CAPTURED          "payment.captured"
#define COMMERCE_EV_ORDER_CONFIRMED           "order.confirmed"
#define COMMERCE_EV_ORDER_COMPENSATING        "order.compensating"
#define COMMERCE_EV_SHIPMENT_CANCELLED        "shipment.cancelled"
#define COMMERCE_EV_PAYMENT_VOIDED            "payment.voided"
#define COMMERCE_EV_PAYMENT_REFUNDED          "payment.refunded"
#define COMMERCE_EV_INVENTORY_RELEASED        "inventory.released"
#define COMMERCE_EV_ORDER_CANCELLED           "order.cancelled"
#define COMMERCE_EV_ORDER_FAILED              "order.failed"
#define COMMERCE_EV_SAGA_STEP_RETRYING        "saga.step.retrying"
#define COMMERCE_EV_SAGA_STEP_FAILED          "saga.step.failed"
#define COMMERCE_EV_SAGA_RESUMED              "saga.resumed"
/* aggregate id: the order id */
#define COMMERCE_AGG_ORDER            "order"

/* reason codes of the sagas that no participant names */
#define COMMERCE_REASON_CANCELLED_BY_OWNER    "cancelled_by_owner"
#define COMMERCE_REASON_CANCELLED_BY_ADMIN    "cancelled_by_admin"
#define COMMERCE_REASON_COMPENSATED_BY_ADMIN  "compensated_by_admin"
#define COMMERCE_REASON_TIMEOUT               "timeout"
#define COMMERCE_REASON_TRANSIENT             "transient_error"

/* aggregate id: the item id */
#define COMMERCE_AGG_ITEM             "item"
/* aggregate id: "price:{sku}@{storeId}", "*" for the base price */
#define COMMERCE_AGG_PRICE            "price"
/* aggregate id: "stock:{storeId}:{sku}" */
#define COMMERCE_AGG_STOCK            "stock"
/* aggregate id: "orderability:{storeId}:{sku}" */
#define COMMERCE_AGG_ORDERABILITY     "orderability"


/*
 * Canonical commands: what the projector's adapters turn inbound
 * messages into (source "canonical" sends them as they are).
 */

#define COMMERCE_CMD_ITEM_UPSERT      "item.upsert"
#define COMMERCE_CMD_PRICE_SET        "price.set"
#define COMMERCE_CMD_STOCK_SET        "stock.set"
#define COMMERCE_CMD_STOCK_ADJUST     "stock.adjust"


/*
 * Commands on commerce.commands (docs/contract.md has their JSON): from
 * the order API, and the admin API's.
 */

#define COMMERCE_CMD_ORDER_PLACE      "order.place"
#define COMMERCE_CMD_ORDER_CANCEL     "order.cancel"
#define COMMERCE_CMD_SAGA_RETRY       "saga.retry"
#define COMMERCE_CMD_SAGA_COMPENSATE  "saga.compensate"
#define COMMERCE_CMD_PROJECTIONS_REBUILD  "projections.rebuild"


/*
 * Participant commands: the saga worker's, on the payment and shipping
 * command topics (docs/contract.md has their JSON); every attempt of one
 * step carries the same idempotency_key.
 */

#define COMMERCE_CMD_PAYMENT_AUTHORIZE  "payment.authorize"
#define COMMERCE_CMD_PAYMENT_CAPTURE    "payment.capture"
#define COMMERCE_CMD_PAYMENT_VOID       "payment.void"
#define COMMERCE_CMD_PAYMENT_REFUND     "payment.refund"
#define COMMERCE_CMD_SHIPMENT_CREATE    "shipment.create"
#define COMMERCE_CMD_SHIPMENT_CANCEL    "shipment.cancel"

/* the carrier's replies on the shipping replies topic */
#define COMMERCE_REPLY_SHIPMENT_CREATED    "shipment.created"
#define COMMERCE_REPLY_SHIPMENT_FAILED     "shipment.failed"
#define COMMERCE_REPLY_SHIPMENT_CANCELLED  "shipment.cancelled"

/* the payment provider's answers: Stripe event types, as webhooks of the
 * source "payments" (Stripe-Signature); which answers which command is in
 * docs/contract.md */
#define COMMERCE_STRIPE_CAPTURABLE "payment_intent.amount_capturable_updated"
#define COMMERCE_STRIPE_SUCCEEDED  "payment_intent.succeeded"
#define COMMERCE_STRIPE_FAILED     "payment_intent.payment_failed"
#define COMMERCE_STRIPE_CANCELED   "payment_intent.canceled"
#define COMMERCE_STRIPE_REFUNDED   "charge.refunded"


#endif /* COMMERCE_CONTRACT_H */

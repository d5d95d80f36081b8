#ifndef FLOTILLA_CRDKAFKA_SHIM_H
#define FLOTILLA_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>

/* rd_kafka_producev is variadic and cannot be called from Swift; this fixed-arity wrapper can.
 * The payload and key are copied (RD_KAFKA_MSG_F_COPY); `headers` is owned by librdkafka on success. */
static inline rd_kafka_resp_err_t flotilla_producev(rd_kafka_t *rk, const char *topic, int32_t partition,
                                                    const void *key, size_t key_len,
                                                    const void *value, size_t value_len,
                                                    rd_kafka_headers_t *headers, void *opaque) {
    if (headers == NULL) {
        return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                                 RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_OPAQUE(opaque),
                                 RD_KAFKA_V_END);
    }
    return rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_HEADERS(headers),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

static const int64_t FLOTILLA_OFFSET_BEGINNING = RD_KAFKA_OFFSET_BEGINNING;
static const int64_t FLOTILLA_OFFSET_END = RD_KAFKA_OFFSET_END;
static const int64_t FLOTILLA_OFFSET_INVALID = RD_KAFKA_OFFSET_INVALID;
#endif

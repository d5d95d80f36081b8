#ifndef FLOTILLA_CRDKAFKA_SHIM_H
#define FLOTILLA_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#endif

/* Not installed: what the library's Swift part needs from its C part besides stt.h. */
#ifndef STT_INTERNAL_H
#define STT_INTERNAL_H

#include "stt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets this thread's stt_last_error message: copied, line breaks made spaces, cut at 1023 bytes on a UTF-8
 * character boundary. */
__attribute__((visibility("hidden"))) void stt_internal_set_error(const char *message);

#ifdef __cplusplus
}
#endif

#endif

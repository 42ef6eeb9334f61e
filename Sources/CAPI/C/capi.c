// The parts of the C API that need no Swift: version, the per-thread error message, stt_free.
#include "stt_internal.h"

#include <stdlib.h>
#include <string.h>

uint32_t stt_abi_version(void) { return STT_ABI_VERSION; }

const char *stt_version(void) { return STT_VERSION; }

// One fixed buffer per thread: setting a message never allocates, and nothing is left to free when a thread exits.
static _Thread_local char last_error[1024];

const char *stt_last_error(void) { return last_error; }

void stt_internal_set_error(const char *message) {
    size_t length = message ? strlen(message) : 0;
    if (length > sizeof last_error - 1) {
        length = sizeof last_error - 1;
        // Back up to the start of the character that would be cut: never leave half a UTF-8 sequence.
        while (length > 0 && ((unsigned char)message[length] & 0xC0) == 0x80) length--;
    }
    for (size_t i = 0; i < length; i++) {
        char c = message[i];
        last_error[i] = (c == '\n' || c == '\r') ? ' ' : c;
    }
    last_error[length] = '\0';
}

void stt_free(void *pointer) { free(pointer); }

/* crc32.h - the CRC-32 of ZIP (.npz members) and gzip (RFC 1952): reflected polynomial 0xEDB88320,
 * initial value and final XOR 0xFFFFFFFF. */
#ifndef DIFFUSE_IO_CRC32_H
#define DIFFUSE_IO_CRC32_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32_of(const uint8_t *p, size_t n);

#endif

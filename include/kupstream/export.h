/// @file
/// KUPSTREAM_API marks the symbols the library exports; everything else is hidden.
#pragma once

#if defined(KUPSTREAM_STATIC)
#define KUPSTREAM_API
#elif defined(KUPSTREAM_BUILDING)
#define KUPSTREAM_API __attribute__((visibility("default")))
#else
#define KUPSTREAM_API
#endif

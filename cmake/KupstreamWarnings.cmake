# Warning flags for kupstream's own targets (never for dependencies).
add_library(kupstream_warnings INTERFACE)
target_compile_options(kupstream_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
if(KUPSTREAM_WERROR)
  target_compile_options(kupstream_warnings INTERFACE -Werror)
endif()

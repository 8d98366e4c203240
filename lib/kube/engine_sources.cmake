# The list+watch engine (ApiClient, Reflector); kept apart from the decoders' and config's list.
target_sources(kupstream_objects PRIVATE ${CMAKE_CURRENT_LIST_DIR}/api_client.cpp ${CMAKE_CURRENT_LIST_DIR}/reflector.cpp)

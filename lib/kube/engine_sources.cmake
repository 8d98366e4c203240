# The list+watch engine (ApiClient, Reflector, credentials as an AuthProvider); kept apart from
# the decoders' and cluster config's list.
target_sources(kupstream_objects PRIVATE ${CMAKE_CURRENT_LIST_DIR}/api_client.cpp ${CMAKE_CURRENT_LIST_DIR}/reflector.cpp
  ${CMAKE_CURRENT_LIST_DIR}/credential_auth.cpp ${CMAKE_CURRENT_LIST_DIR}/watch_list_memory.cpp)

# Compiler launcher (ccache) and the warning set applied to Chorus's own sources.
find_program(CHORUS_CCACHE ccache)
if(CHORUS_CCACHE)
  # PCH-aware settings: ccache otherwise refuses to cache TUs that use the LibTorch PCH.
  set(_ccache ${CMAKE_COMMAND} -E env "CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime" ${CHORUS_CCACHE})
  set(CMAKE_C_COMPILER_LAUNCHER ${_ccache})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${_ccache})
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${_ccache})
endif()

# chorus_warnings: an interface target every Chorus target links to.
add_library(chorus_warnings INTERFACE)
target_compile_options(chorus_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${CHORUS_WARNINGS_AS_ERRORS}>>:-Werror>
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${CHORUS_WARNINGS_AS_ERRORS}>>:-Werror=all-warnings>)

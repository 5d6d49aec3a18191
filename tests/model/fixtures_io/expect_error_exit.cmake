# Runs PROGRAM with ARGS and checks it exits with status 1 (a chorus::Error) and prints EXPECT.
execute_process(COMMAND ${PROGRAM} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "'${ARGS}' exited with ${rc}; expected 1 (an error message, not a crash):\n${out}${err}")
endif()
if(NOT "${out}${err}" MATCHES "${EXPECT}")
  message(FATAL_ERROR "'${ARGS}' did not print '${EXPECT}':\n${out}${err}")
endif()

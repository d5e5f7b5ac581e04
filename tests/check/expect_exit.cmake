# Runs PROGRAM with ARGS ('|'-separated) and fails unless it exits with EXPECTED_EXIT and, when
# PATTERN is not empty, its stdout+stderr match the regular expression PATTERN.
# Usage: cmake -DPROGRAM=... -DARGS=a|b -DEXPECTED_EXIT=1 -DPATTERN=regex -P expect_exit.cmake
string(REPLACE "|" ";" args "${ARGS}")
execute_process(COMMAND ${PROGRAM} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}${err}")
if(NOT rc STREQUAL "${EXPECTED_EXIT}")
  message(FATAL_ERROR "expected exit code ${EXPECTED_EXIT}, got ${rc}")
endif()
if(NOT "${PATTERN}" STREQUAL "" AND NOT "${out}${err}" MATCHES "${PATTERN}")
  message(FATAL_ERROR "output does not match: ${PATTERN}")
endif()

# synod sim --history-out DIR, then synod check on the file it wrote; cleans DIR up.
# Seed 8: a seed with a long history (several hundred operations); seed 7 became a
# fault-heavy run with few acknowledged operations once leader changes answered requests early.
file(REMOVE_RECURSE ${DIR})
execute_process(COMMAND ${SYNOD} sim --seeds 8 --history-out ${DIR} RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "synod sim failed (${rc}): ${out}${err}")
endif()
if(NOT EXISTS ${DIR}/seed-8.jsonl)
  message(FATAL_ERROR "no history written to ${DIR}/seed-8.jsonl")
endif()
file(STRINGS ${DIR}/seed-8.jsonl lines)
list(LENGTH lines n)
if(n LESS 50)
  message(FATAL_ERROR "history too short: ${n} operations")
endif()
execute_process(COMMAND ${SYNOD} check ${DIR}/seed-8.jsonl RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(REMOVE_RECURSE ${DIR})
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "synod check failed (${rc}): ${out}${err}")
endif()
message("${out}")
